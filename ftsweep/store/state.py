"""The store's run-keyed tables and its watermarks, for writers and readers alike.

No pyarrow here: readers import this to check a snapshot's watermarks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb

# Tables whose rows belong to one run (column run_id); every other table (migrations,
# trials, ...) is copied whole when a snapshot is brought up to date.
TABLES = ("runs", "metrics", "evals", "eval_examples")


def load_states(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    cur = con.execute("SELECT * FROM _ingest_state")
    cols = [d[0] for d in cur.description or []]
    return {row[0]: dict(zip(cols, row, strict=True)) for row in cur.fetchall()}


def _in_list(ids: Iterable[str]) -> str:
    # Literal constants, so DuckDB pushes the filter into the scan (zone maps).
    return ", ".join("'" + i.replace("'", "''") + "'" for i in sorted(set(ids)))


def run_filters(run_ids: Iterable[str]) -> list[str]:
    """WHERE clauses selecting these runs' rows, as few as possible but prunable.

    An equality with a literal lets DuckDB skip every row group whose min/max excludes
    it (rows of one run are stored together), so a handful of runs is found without
    reading the whole table; many runs go in one IN list.
    """
    ids = sorted(set(run_ids))
    if len(ids) > 16:
        return [f"run_id IN ({_in_list(ids)})"]
    return [f"run_id = {_in_list([i])}" for i in ids]


__all__ = ["TABLES", "load_states", "run_filters"]
