"""``ftsweep status`` rows, live from the run directories; never touches DuckDB.

A heartbeat is live data that the store only sees at the next ingest, so status reads
the run directories directly. This module must not import duckdb or pyarrow (status
answers in a fraction of a second; a test checks the imports).
"""

from __future__ import annotations

import time
from typing import Any

from ftsweep.rundir import RunDir, RunState
from ftsweep.workspace import Workspace


def _primary(spec: dict[str, Any], result: dict[str, Any] | None) -> tuple[str | None, Any]:
    name = ((spec.get("config") or {}).get("eval") or {}).get("primary_metric")
    if not name or not result:
        return name, None
    return name, (result.get("final_eval") or {}).get(name)


def _status_row(rd: RunDir, now: float) -> dict[str, Any]:
    spec = rd.spec()
    # Each file is read once, and only where the state says it matters (status reads
    # every run): a readable result.json is what makes a run complete (read_state).
    result = rd.result()
    state = RunState.COMPLETE if result is not None else rd.read_state(now)
    failure = (rd.failure() or {}) if state in (RunState.FAILED, RunState.PRUNED) else {}
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
