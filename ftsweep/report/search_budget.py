"""View-models of what each method of a search got: trials by state (the budget) and the
training steps pruning saved. Pure Python, like ``search_view`` (which assembles them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

TRIAL_STATES = ("complete", "pruned", "fail", "running", "waiting")
SEARCHED = "ftsweep"  # source of the trials the search asked; "grid" = warm-start trials


@dataclass(frozen=True)
class PruningRow:
    method: str
    n_trials: int  # finished searched trials (complete, pruned, failed)
    n_pruned: int
    pruned_pct: float | None
    mean_pruned_step: float | None
    steps_saved: int | None  # None when a pruned trial's max_steps is unknown
    steps_budget: int | None  # what the finished trials would have cost unpruned
    saved_pct: float | None


@dataclass(frozen=True)
class BudgetRow:
    method: str
    by_state: dict[str, int]  # every TRIAL_STATES key, searched trials only
    searched: int
    warm_start: int


def _max_steps(runs: list[dict[str, Any]]) -> dict[str, int]:
    out = {}
    for run in runs:
        steps = ((run.get("config") or {}).get("training") or {}).get("max_steps")
        if isinstance(steps, int) and steps > 0:
            out[run["run_id"]] = steps
    return out


def _reached(row: dict[str, Any]) -> int:
    if row["last_step"] is not None:
        return int(row["last_step"])
    return max((int(s) for s in (row["intermediate"] or {})), default=0)


def pruning_rows(trials: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[PruningRow]:
    """Per method: pruned trials and the training steps pruning saved.

    A pruned trial saves ``max_steps - reached`` on the run that reported (its first
    seed) and ``max_steps`` on each of its other seeds, which train only after the
    first completes. ``max_steps`` comes from the runs' resolved config.
    """
    limits = _max_steps(runs)
    acc: dict[str, dict[str, Any]] = {}
    for row in trials:
        if row["source"] != SEARCHED or row["state"] not in ("complete", "pruned", "fail"):
            continue
        a = acc.setdefault(
            row["method"] or "?", {"n": 0, "pruned": [], "saved": 0, "budget": 0, "known": True}
        )
        a["n"] += 1
        run_ids = row["run_ids"] or []
        known = [limits[r] for r in run_ids if r in limits]
        if not known:
            a["known"] = False
            continue
        steps, n_runs = max(known), max(1, len(run_ids))
        a["budget"] += steps * n_runs
        if row["state"] == "pruned":
            reached = _reached(row)
            a["pruned"].append(reached)
            a["saved"] += steps * n_runs - min(reached, steps)
    out = []
    for method, a in sorted(acc.items()):
        n_pruned = len(a["pruned"])
        if not a["known"]:  # count pruned trials of unknown limit too
            n_pruned = sum(
                1
                for r in trials
                if (r["method"] or "?") == method
                and r["source"] == SEARCHED
                and r["state"] == "pruned"
            )
        saved = a["saved"] if a["known"] else None
        budget = a["budget"] if a["known"] else None
        out.append(
            PruningRow(
                method,
                a["n"],
                n_pruned,
                100.0 * n_pruned / a["n"] if a["n"] else None,
                sum(a["pruned"]) / len(a["pruned"]) if a["pruned"] else None,
                saved,
                budget,
                100.0 * saved / budget if saved is not None and budget else None,
            )
        )
    return out


def budget_rows(trials: list[dict[str, Any]]) -> list[BudgetRow]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(TRIAL_STATES, 0))
    warm: dict[str, int] = defaultdict(int)
    for row in trials:
        method = row["method"] or "?"
        if row["source"] == SEARCHED:
            state = row["state"] if row["state"] in TRIAL_STATES else "fail"
            counts[method][state] += 1
        else:
            warm[method] += 1
    return [
        BudgetRow(m, counts[m], sum(counts[m].values()), warm[m])
        for m in sorted(set(counts) | set(warm))
    ]
