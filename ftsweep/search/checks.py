"""Checks of a search block that need more than its schema: objectives and pruning inputs."""

from __future__ import annotations

from ftsweep.config.schema import ExperimentFile
from ftsweep.config.yamlpos import Positions
from ftsweep.errors import Problem, did_you_mean
from ftsweep.matrix import Point
from ftsweep.search.space import SearchSpace

# What a run records besides its evaluation (result.json), each with its better direction.
COST_METRICS: dict[str, str] = {
    "trainable_params": "minimize",
    "total_params": "minimize",
    "trainable_pct": "minimize",
    "peak_memory_mb": "minimize",
    "wall_time_s": "minimize",
    "train_time_s": "minimize",
    "artifact_size_mb": "minimize",
    "tokens_per_s": "maximize",
    "steps": "minimize",
}


def probe_points(space: SearchSpace) -> list[Point]:
    """Points that validation resolves and deep-checks: every range end, every choice."""
    return [ms.point(values) for ms in space.methods for values in ms.probe_values()]


def evaluator_metrics(spec: ExperimentFile) -> dict[str, str]:
    """Metric → the direction its evaluator declares (higher is better → maximize)."""
    from ftsweep import evaluators as ev

    out: dict[str, str] = {}
    for name in spec.eval.evaluators:
        try:
            declared = ev.get_evaluator(name).metrics_for(spec.eval.generation.num_samples)
        except KeyError:
            continue  # reported by the evaluator checks
        out.update({m: "maximize" if higher else "minimize" for m, higher in declared.items()})
    return out


def search_checks(spec: ExperimentFile, pos: Positions) -> list[Problem]:
    search = spec.search
    if search is None:
        return []
    problems: list[Problem] = []
    known = {**COST_METRICS, **evaluator_metrics(spec)}
    for i, obj in enumerate(search.objectives):
        if obj.metric not in known:
            problems.append(
                pos.problem(
                    ("search", "objectives", i, "metric"),
                    f"no evaluator in eval.evaluators computes this metric and runs do not record "
                    f"it{did_you_mean(obj.metric, known)}",
                    value=obj.metric,
                    has_value=True,
                    valid=", ".join(sorted(known)),
                )
            )
        elif obj.direction is None:
            obj.direction = known[obj.metric]  # type: ignore[assignment]
    if search.pruner.type != "none":
        if not spec.training.evaluates:
            problems.append(
                pos.problem(
                    ("search", "pruner", "type"),
                    "pruning decides from the eval loss logged every "
                    "training.eval_every steps; set training.eval_every "
                    "(or training.eval_strategy: epoch)",
                    value=search.pruner.type,
                    has_value=True,
                )
            )
        if not (
            spec.data.eval
            or spec.data.eval_fraction
            or (spec.data.hub and spec.data.hub.eval_split)
        ):
            problems.append(
                pos.problem(
                    ("search", "pruner", "type"),
                    "pruning needs an eval set for its eval loss: set "
                    "data.eval or data.eval_fraction",
                    value=search.pruner.type,
                    has_value=True,
                )
            )
    return problems
