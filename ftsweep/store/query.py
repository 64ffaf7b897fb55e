"""Read-only access for users: ``ftsweep query`` SQL and ``ftsweep status`` rows.

``run_query`` runs user SQL on a read-only connection with external access disabled
and the configuration locked (invariant 7): it can read the store's tables and nothing
else, and write nothing. ``status_rows`` reads run directories directly rather than the
store, because a heartbeat is live data that the store only sees at the next ingest.
"""

from __future__ import annotations

import time
from typing import Any

import duckdb

from ftsweep.rundir import RunDir, RunState
from ftsweep.store.store import open_reader
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
    con = open_reader(workspace)
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if cursor.description else []
    except duckdb.Error as exc:
        raise QueryError(_explain(exc)) from exc
    finally:
        con.close()
    return columns, rows


def _primary(spec: dict[str, Any], result: dict[str, Any] | None) -> tuple[str | None, Any]:
    name = ((spec.get("config") or {}).get("eval") or {}).get("primary_metric")
    if not name or not result:
        return name, None
    return name, (result.get("final_eval") or {}).get(name)


def _status_row(rd: RunDir, now: float) -> dict[str, Any]:
    spec = rd.spec()
    state = rd.read_state(now)
    result = rd.result()
    failure = rd.failure() or {}
    hb = rd.heartbeat() if state in (RunState.RUNNING, RunState.LOST) else None
    metric, value = _primary(spec, result)
    return {
        "run_id": spec.get("run_id") or rd.run_id,
        "experiment": spec.get("experiment"),
        "method": spec.get("method"),
        "seed": spec.get("seed"),
        "params": spec.get("params") or {},
        "status": str(state),
        "step": (hb or {}).get("step", (result or {}).get("steps")),
        "max_steps": (hb or {}).get("max_steps"),
        "eta_s": (hb or {}).get("eta_s"),
        "primary_metric": metric,
        "primary_value": value,
        "wall_time_s": (result or {}).get("wall_time_s"),
        "failure_cause": failure.get("cause"),
    }


def status_rows(workspace: Workspace, experiment: str | None = None) -> list[dict[str, Any]]:
    """One dict per run, live from the run directories (never touches DuckDB).

    Keys: run_id, experiment, method, seed, params, status, step, max_steps, eta_s,
    primary_metric, primary_value, wall_time_s, failure_cause. A run whose spec cannot
    be read is listed with status "unreadable" and the error as failure_cause.
    """
    now = time.time()
    rows = []
    for rd in workspace.iter_run_dirs(experiment):
        try:
            rows.append(_status_row(rd, now))
        except (OSError, ValueError) as exc:
            rows.append(
                {
                    "run_id": rd.run_id,
                    "experiment": rd.path.parent.name,
                    "method": None,
                    "seed": None,
                    "params": {},
                    "status": "unreadable",
                    "step": None,
                    "max_steps": None,
                    "eta_s": None,
                    "primary_metric": None,
                    "primary_value": None,
                    "wall_time_s": None,
                    "failure_cause": f"{type(exc).__name__}: {exc}",
                }
            )
    return rows
