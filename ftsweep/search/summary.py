"""The search summary file: trial counts and best values per method, for `ftsweep status`.

Written by the launcher after every trial it tells (``SearchDriver.publish``); read
without importing Optuna or DuckDB so that `status` answers at once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ftsweep.workspace import Workspace, safe_name

SOURCE = "ftsweep"  # user_attr "source" of trials ftsweep asked (warm-start ones are "grid")


def journal_path(ws: Workspace, experiment: str) -> Path:
    """The Optuna journal of an experiment's studies (light: no Optuna import)."""
    return ws.root / "studies" / f"{safe_name(experiment)}.journal"


def summary_path(ws: Workspace, experiment: str) -> Path:
    return ws.root / "studies" / f"{safe_name(experiment)}.summary.json"


def read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def status_rows(ws: Workspace, experiment: str | None) -> list[dict[str, Any]]:
    """Trials per experiment and method, from the summary files."""
    studies = ws.root / "studies"
    if not studies.is_dir():
        return []
    rows = []
    for path in sorted(studies.glob("*.summary.json")):
        if experiment is not None and summary_path(ws, experiment) != path:
            continue
        summary = read_summary(path)
        if summary is None:
            continue
        for method, m in sorted(summary.get("methods", {}).items()):
            rows.append(
                {
                    "experiment": summary.get("experiment") or path.name[:-13],
                    "method": method,
                    **m,
                    "objective": summary.get("objective"),
                    "direction": summary.get("direction"),
                    "n_trials": summary.get("n_trials"),
                    "budget": summary.get("budget"),
                }
            )
    return rows


def summarize(
    experiment: str, rows: list[dict[str, Any]], objectives: Any, limit: int | None, budget: str
) -> dict[str, Any]:
    """Per method: trials by state and the best so far (first objective)."""
    first = objectives[0]
    better = max if first.direction == "maximize" else min
    methods: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = methods.setdefault(
            str(r["method"]),
            {
                "complete": 0,
                "pruned": 0,
                "fail": 0,
                "running": 0,
                "waiting": 0,
                "warm_start": 0,
                "best": None,
                "best_trial": None,
            },
        )
        if r["source"] != SOURCE:
            m["warm_start"] += 1
        else:
            m[r["state"]] = m.get(r["state"], 0) + 1
        if (
            r["state"] == "complete"
            and r["value"] is not None
            and (m["best"] is None or better(r["value"], m["best"]) == r["value"])
        ):
            m["best"], m["best_trial"] = r["value"], r["number"]
    return {
        "experiment": experiment,
        "objective": first.metric,
        "direction": first.direction,
        "budget": budget,
        "n_trials": limit,
        "methods": methods,
        "time": time.time(),
    }
