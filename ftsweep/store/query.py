"""Read-only SQL for users: ``ftsweep query``.

``run_query`` runs user SQL on a read-only connection to the published snapshot with
external access disabled and the configuration locked (invariant 7): it can read the
store's tables and nothing else, and write nothing.
"""

from __future__ import annotations

import threading
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


def run_query(
    workspace: Workspace, sql: str, timeout_s: float | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run user SQL read-only; return (column names, rows). Raises ``QueryError``."""
    columns, rows, _ = run_query_noting(workspace, sql, timeout_s)
    return columns, rows


def run_query_noting(
    workspace: Workspace, sql: str, timeout_s: float | None = None
) -> tuple[list[str], list[tuple[Any, ...]], str | None]:
    """``run_query``, plus a note when the snapshot is behind the run directories.

    One statement only: DuckDB runs them all and returns the last one's rows, so the
    others' results would vanish unseen. ``timeout_s`` interrupts a longer query (DuckDB
    has no statement timeout of its own; ``interrupt`` from a timer thread stops it).
    """
    con, fresh = open_snapshot(workspace)
    timer = threading.Timer(timeout_s, con.interrupt) if timeout_s else None
    try:
        _one_statement(con, sql)
        if timer is not None:
            timer.start()
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if cursor.description else []
    except duckdb.InterruptException as exc:
        raise QueryError(
            f"the query ran longer than --timeout {timeout_s:g} s and was "
            "stopped; narrow it, or give a larger --timeout"
        ) from exc
    except duckdb.Error as exc:
        raise QueryError(_explain(exc)) from exc
    finally:
        if timer is not None:
            timer.cancel()
        con.close()
    return columns, rows, fresh.note()


def _one_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    n = len(con.extract_statements(sql))
    if n == 0:
        raise QueryError('no SQL statement given; e.g. "select * from runs"')
    if n > 1:
        raise QueryError(
            f"{n} SQL statements given, and `ftsweep query` runs one (only the "
            "last one's rows would be shown); run each with its own "
            "`ftsweep query`"
        )


__all__ = ["QueryError", "run_query", "run_query_noting", "status_rows"]
