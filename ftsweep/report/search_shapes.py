"""View-models of the search's multi-dimensional views: parallel coordinates and the
Pareto front. Pure Python, like ``search_view`` (which assembles them).

Parallel coordinates place every parameter on a [0, 1] axis spanning its search range
(from the journal's distributions; log ranges on a log scale), or the observed values
when the journal is missing, so one method's trials are drawn as comparable lines.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftsweep.report.search_queries import Distribution


@dataclass(frozen=True)
class Axis:
    name: str
    log: bool
    ticks: tuple[tuple[float, str], ...]  # (position in [0, 1], label)


@dataclass(frozen=True)
class ParallelLine:
    number: int
    coords: tuple[float | None, ...]  # one per axis, None where the trial lacks the param
    value: float | None  # the first objective; None for a pruned trial


@dataclass(frozen=True)
class Parallel:
    figure: str
    method: str
    metric: str
    axes: tuple[Axis, ...]
    lines: tuple[ParallelLine, ...]


@dataclass(frozen=True)
class ParetoPoint:
    method: str
    study: str
    number: int
    values: tuple[float, ...]
    front: bool  # no other trial is at least as good in every objective and better in one


@dataclass(frozen=True)
class Pareto:
    figure: str
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    points: tuple[ParetoPoint, ...]  # front first, then by method and number
    reason: str | None  # why no front is shown


def method_params(row: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """A trial's parameters by its method's own names → (name in the study, value).

    A shared study holds ``method`` and ``<method>:<key>``; a per-method one plain keys.
    """
    prefix = f"{row['method']}:"
    out = {}
    for name, value in (row["params"] or {}).items():
        if name != "method":
            out[name[len(prefix) :] if name.startswith(prefix) else name] = (name, value)
    return out


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value, sort_keys=True)


def _observed(values: list[Any]) -> Distribution:
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if nums and len(nums) == len(values):
        return Distribution("float", float(min(nums)), float(max(nums)))
    return Distribution("categorical", choices=tuple(sorted({json.dumps(v) for v in values})))


def _axis(name: str, dist: Distribution) -> Axis:
    if dist.kind == "categorical":
        n = len(dist.choices)
        ticks = tuple(((i / (n - 1) if n > 1 else 0.5), c) for i, c in enumerate(dist.choices))
        return Axis(name, False, ticks)
    low, high = dist.low, dist.high
    assert low is not None and high is not None
    if high == low:
        return Axis(name, dist.log, ((0.5, fmt_value(low)),))
    return Axis(name, dist.log, ((0.0, fmt_value(low)), (1.0, fmt_value(high))))


def _position(value: Any, dist: Distribution) -> float | None:
    if dist.kind == "categorical":
        text = json.dumps(value)
        if text not in dist.choices:
            return None
        n = len(dist.choices)
        return dist.choices.index(text) / (n - 1) if n > 1 else 0.5
    if not isinstance(value, int | float) or dist.low is None or dist.high is None:
        return None
    low, high, v = dist.low, dist.high, float(value)
    if dist.log and low > 0 and v > 0:
        low, high, v = math.log(low), math.log(high), math.log(v)
    return 0.5 if high == low else min(1.0, max(0.0, (v - low) / (high - low)))


def parallel_sets(
    trials: Sequence[dict[str, Any]],
    values: Sequence[float | None],
    dists: dict[tuple[str, str], Distribution],
    metric: str,
) -> list[Parallel]:
    """One parallel-coordinates view per method: its complete and pruned trials.

    ``values[i]`` is the first objective of ``trials[i]``; ``dists`` maps (study, name
    in the study) to the parameter's search range.
    """
    by_method: dict[str, list[tuple[dict[str, Any], float | None]]] = defaultdict(list)
    for row, value in zip(trials, values, strict=True):
        if row["state"] in ("complete", "pruned"):
            by_method[row["method"] or "?"].append((row, value))
    out = []
    for i, (method, members) in enumerate(sorted(by_method.items())):
        named = [(row, method_params(row), value) for row, value in members]
        names = sorted({n for _, params, _ in named for n in params})
        axes_dists = {}
        for name in names:
            found = [
                dists.get((row["study"], params[name][0]))
                for row, params, _ in named
                if name in params
            ]
            known = [d for d in found if d is not None]
            axes_dists[name] = (
                known[0]
                if known
                else _observed([params[name][1] for _, params, _ in named if name in params])
            )
        lines = tuple(
            ParallelLine(
                int(row["number"]),
                tuple(
                    _position(params[n][1], axes_dists[n]) if n in params else None for n in names
                ),
                value if row["state"] == "complete" else None,
            )
            for row, params, value in sorted(named, key=lambda m: m[0]["number"])
        )
        axes = tuple(_axis(n, axes_dists[n]) for n in names)
        out.append(Parallel(f"search-parallel-{i}", method, metric, axes, lines))
    return out


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Both in "lower is better" form."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_view(
    candidates: Sequence[tuple[str, str, int, tuple[float | None, ...]]],
    metrics: Sequence[str],
    directions: Sequence[str | None],
) -> Pareto:
    """Non-dominated trials over every method; candidates are (method, study, number, values)."""
    if len(metrics) < 2:
        return Pareto("search-pareto", tuple(metrics), (), (), "one objective: no Pareto front")
    if any(d is None for d in directions):
        return Pareto(
            "search-pareto",
            tuple(metrics),
            (),
            (),
            "the objectives' directions are unknown (the study journal is unreadable)",
        )
    dirs = tuple(str(d) for d in directions)
    full = [
        (m, s, n, tuple(float(v) for v in vals if v is not None))
        for m, s, n, vals in candidates
        if all(v is not None for v in vals)
    ]
    if not full:
        return Pareto("search-pareto", tuple(metrics), dirs, (), "no complete trial yet")
    signs = [-1.0 if d == "maximize" else 1.0 for d in dirs]
    low = [tuple(s * v for s, v in zip(signs, vals, strict=True)) for *_, vals in full]
    points = [
        ParetoPoint(m, s, n, vals, not any(_dominates(o, low[i]) for o in low))
        for i, (m, s, n, vals) in enumerate(full)
    ]
    points.sort(key=lambda p: (not p.front, p.method, p.study, p.number))
    return Pareto("search-pareto", tuple(metrics), dirs, tuple(points), None)
