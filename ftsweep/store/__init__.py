"""The DuckDB store: one file per workspace, one writer, many readers (invariant 3).

Public API::

    Store.writer(workspace)            context manager, lock holder only; publishes a snapshot
    ingest.ingest(con, run_dirs)       incremental: only what changed is read
    rebuild(workspace) -> IngestStats  recreate the store from run directories
    open_reader(workspace)             read-only connection; never a lock error
    open_snapshot(workspace)           the same, and how fresh it is
    run_query(workspace, sql)          user SQL, read-only, no file access
    status_rows(workspace, experiment) live run states from run directories

Names are imported on first use (PEP 562), so ``from ftsweep.store import status_rows``
does not import duckdb or pyarrow: ``ftsweep status`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftsweep.store.health import DamagedStore, no_space
    from ftsweep.store.ingest import IngestStats
    from ftsweep.store.migrations import MIGRATIONS, StoreError, migrate
    from ftsweep.store.query import QueryError, run_query, run_query_noting
    from ftsweep.store.status import status_rows
    from ftsweep.store.store import (
        Freshness,
        Store,
        open_reader,
        open_snapshot,
        rebuild,
        refresh,
        set_aside_and_rebuild,
    )

_WHERE = {
    "IngestStats": "ingest",
    "MIGRATIONS": "migrations",
    "StoreError": "migrations",
    "migrate": "migrations",
    "QueryError": "query",
    "run_query": "query",
    "run_query_noting": "query",
    "status_rows": "status",
    "DamagedStore": "health",
    "no_space": "health",
    "set_aside_and_rebuild": "store",
    "Freshness": "store",
    "Store": "store",
    "open_reader": "store",
    "open_snapshot": "store",
    "rebuild": "store",
    "refresh": "store",
}

__all__ = [
    "DamagedStore",
    "no_space",
    "set_aside_and_rebuild",
    "MIGRATIONS",
    "Freshness",
    "IngestStats",
    "QueryError",
    "Store",
    "StoreError",
    "migrate",
    "open_reader",
    "open_snapshot",
    "rebuild",
    "refresh",
    "run_query",
    "run_query_noting",
    "status_rows",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
