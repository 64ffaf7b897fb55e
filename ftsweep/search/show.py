"""What `plan` and `status` print about a search: its space, budgets, and trials so far."""

from __future__ import annotations

import json
import math
from typing import Any

from ftsweep.config.load import Experiment
from ftsweep.search.summary import status_rows  # noqa: F401 - re-exported for the CLI


def plan_rows(exp: Experiment) -> list[dict[str, Any]]:
    """One row per method: its space, its trial budget and the most steps it can train."""
    search, space = exp.spec.search, exp.search
    assert search is not None and space is not None
    per_method = search.budget == "per_method"
    n = search.n_trials
    if n is None and search.sampler == "grid":
        sizes = [ms.grid_size() for ms in space.methods]
        n = max(sizes) if per_method else sum(sizes)
    rows = []
    for ms in space.methods:
        steps_key = ms.dists.get("training.max_steps")
        max_steps = (
            int(steps_key.high)
            if steps_key
            else (ms.fixed.get("training.max_steps") or exp.spec.training.max_steps)
        )
        trials = n if per_method else None
        bound = None
        if trials is not None and max_steps:
            bound = trials * search.seeds_per_trial * int(max_steps)
        rows.append(
            {
                "method": ms.method,
                "space": {k: d.describe() for k, d in sorted(ms.dists.items())},
                "fixed": ms.fixed,
                "trials": trials,
                "max_steps_per_run": max_steps,
                "max_training_steps": bound,
                "pruner": search.pruner.type if search.pruner.type != "none" else None,
                "pruner_override": ms.pruner,
            }
        )
    return rows


def budget_line(exp: Experiment) -> str:
    search = exp.spec.search
    assert search is not None and exp.search is not None
    n = len(exp.search.methods)
    stops = []
    if search.n_trials is not None:
        stops.append(
            f"{search.n_trials} trials per method ({search.n_trials * n} in all)"
            if search.budget == "per_method"
            else f"{search.n_trials} trials in all"
        )
    elif search.sampler == "grid":
        stops.append("every grid point")
    if search.timeout is not None:
        stops.append(f"timeout {search.timeout:g} s")
    objectives = ", ".join(f"{o.direction} {o.metric}" for o in search.objectives)
    return (
        f"sampler {search.sampler} (seed {search.seed}), budget {search.budget}: "
        f"{' or '.join(stops)}; {search.seeds_per_trial} seed(s) per trial; "
        f"objectives: {objectives}; pruner: {search.pruner.type}"
    )


def total_bound(exp: Experiment, rows: list[dict[str, Any]]) -> int | None:
    """The most training steps the whole search can spend (no pruning, no reuse)."""
    search = exp.spec.search
    assert search is not None
    if search.budget == "shared":
        steps = [r["max_steps_per_run"] for r in rows]
        if search.n_trials is None or any(not s for s in steps):
            return None
        return search.n_trials * search.seeds_per_trial * max(int(s) for s in steps)
    bounds = [r["max_training_steps"] for r in rows]
    return None if any(b is None for b in bounds) else int(math.fsum(bounds))


def fmt_fixed(fixed: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(fixed.items()))
