"""Read-only SQL for users: ``ftsweep query``.

``run_query`` runs user SQL on a read-only connection to the published snapshot with
external access disabled and the configuration locked (invariant 7): it can read the
store's tables and nothing else, and write nothing.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ftsweep.store.status import status_rows
from ftsweep.store.store import open_snapshot
from ftsweep.workspace import Workspace


class QueryError(ValueError):
    """User SQL that failed or was refused; the message is meant for the user."""


def _explain(exc: duckdb.Error) -> str:
    text = str(exc)
    if "read-only mode" in text:
        return (
            "the store is read-only here: `ftsweep query` runs queries, not writes "
            f"({text.splitlines()[0]})"
        )
    if isinstance(exc, duckdb.PermissionException) or "disabled by configuration" in text:
        return (
            "file and network access is disabled in `ftsweep query`; only the store's "
            f"tables can be read ({text.splitlines()[0]})"
        )
    return text


def run_query(workspace: Workspace, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run user SQL read-only; return (column names, rows). Raises ``QueryError``."""
    columns, rows, _ = run_query_noting(workspace, sql)
    return columns, rows


def run_query_noting(
    workspace: Workspace, sql: str
) -> tuple[list[str], list[tuple[Any, ...]], str | None]:
    """``run_query``, plus a note when the snapshot is behind the run directories."""
    con, fresh = open_snapshot(workspace)
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if cursor.description else []
    except duckdb.Error as exc:
        raise QueryError(_explain(exc)) from exc
    finally:
        con.close()
    return columns, rows, fresh.note()



__all__ = ["QueryError", "run_query", "run_query_noting", "status_rows"]
