"""What a study knows before its first trial: the points of a grid, and warm starts.

``enqueue_grid`` puts every point of each method's grid into its study, so the grid
sampler goes through the same ask-and-tell path as the others. ``warm_start`` tells each
study the complete grid runs (the experiment's matrix) whose values lie inside its
method's space; they are trials with ``source = grid`` and do not use the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from ftsweep.config.load import RunSpec
from ftsweep.rundir import RunDir, RunState
from ftsweep.search.study import Handle


def enqueue_grid(handles: dict[str, Handle], budget: str) -> None:
    for h in handles.values():
        for values in h.space.grid():
            params = {
                h.prefix + k: h.space.dists[k].to_optuna_value(v)
                for k, v in values.items()
                if k in h.space.dists
            }
            if budget == "shared":
                params["method"] = h.method
            h.study.enqueue_trial(params, skip_if_exists=True)


def warm_start(
    handles: dict[str, Handle],
    budget: str,
    runs: list[RunSpec],
    run_dir: Callable[[RunSpec], RunDir],
    objective_values: Callable[[list[RunSpec]], list[float] | None],
) -> None:
    """Tell each study the complete grid runs of its method that fall inside its space."""
    from optuna.distributions import CategoricalDistribution

    for h in handles.values():
        known = {
            rid
            for t in h.study.get_trials(deepcopy=False)
            for rid in t.user_attrs.get("run_ids", [])
        }
        dists = _optuna_distributions(h)
        for run in runs:
            if run.method != h.method or run.run_id in known:
                continue
            if run_dir(run).read_state() != RunState.COMPLETE:
                continue
            params = _params_in_space(h, run.params)
            values = objective_values([run])
            if params is None or values is None:
                continue
            if budget == "shared":
                params["method"] = h.method
                dists["method"] = CategoricalDistribution(list(handles))
            h.study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: dists[k] for k in params},
                    values=values,
                    user_attrs={"source": "grid", "method": h.method, "run_ids": [run.run_id]},
                )
            )


def _optuna_distributions(h: Handle) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, d in h.space.dists.items():
        name = h.prefix + key
        if d.kind == "float":
            out[name] = FloatDistribution(d.low, d.high, log=d.log, step=d.step)
        elif d.kind == "int":
            out[name] = IntDistribution(int(d.low), int(d.high), log=d.log, step=int(d.step or 1))
        else:
            out[name] = CategoricalDistribution([d.to_optuna_value(c) for c in d.choices])
    return out


def _params_in_space(h: Handle, run_params: dict[str, Any]) -> dict[str, Any] | None:
    """A grid run's values as study parameters, or None if any lies outside the space."""
    for key, value in h.space.fixed.items():
        if run_params.get(key, value) != value:
            return None
    out = {}
    for key, d in h.space.dists.items():
        if key not in run_params:
            return None
        v = run_params[key]
        if d.kind == "choices":
            if v not in d.choices:
                return None
        elif not isinstance(v, int | float) or not d.low <= v <= d.high:
            return None
        out[h.prefix + key] = d.to_optuna_value(v)
    return out
