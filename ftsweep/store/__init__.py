"""The DuckDB store: one file per workspace, one writer, many readers (invariant 3).

Public API::

    Store.writer(workspace)            context manager, lock holder only; publishes a snapshot
    ingest(con, run_dirs) -> IngestStats
    rebuild(workspace) -> IngestStats  recreate the store from run directories
    open_reader(workspace)             read-only connection; never a lock error
    run_query(workspace, sql)          user SQL, read-only, no file access
    status_rows(workspace, experiment) live run states from run directories
"""

from ftsweep.store.ingest import IngestStats, ingest
from ftsweep.store.migrations import MIGRATIONS, migrate
from ftsweep.store.query import QueryError, run_query, status_rows
from ftsweep.store.store import Store, StoreError, open_reader, rebuild, refresh

__all__ = [
    "MIGRATIONS",
    "IngestStats",
    "QueryError",
    "Store",
    "StoreError",
    "ingest",
    "migrate",
    "open_reader",
    "rebuild",
    "refresh",
    "run_query",
    "status_rows",
]
