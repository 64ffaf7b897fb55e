"""Pareto fronts: quality against each cost, over every trained configuration.

A configuration is on the front of an axis when no other configuration is at least as
good on both quality and that cost and strictly better on one (it is *non-dominated*).
Quality is the primary metric's mean over seeds; the cost is its mean over the same runs.
Each axis has its own direction: memory, parameters, size on disk and time are better
low, throughput is better high. Two configurations with the same point are both on the
front (neither is strictly better). The untrained base model is left out: it trains
nothing, so it costs nothing on these axes and would sit on every front.

Pure functions over view-model rows; the figure is drawn by ``pareto_svg`` (plots).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ftsweep.report.rows import LeaderRow
from ftsweep.report.stats import Stat

# (LeaderRow attribute, label with unit, what it measures, higher is better)
AXES: tuple[tuple[str, str, str, bool], ...] = (
    ("peak_memory_mb", "peak memory (MB)", "the device's peak during the run", False),
    ("trainable_params", "trainable parameters", "parameters the method trains", False),
    ("artifact_size_mb", "size on disk (MB)", "what the run saved: adapter or model", False),
    ("train_time_s", "train time (s)", "the training loop alone, all attempts", False),
    ("tokens_per_s", "throughput (tokens/s)", "tokens trained per second of the loop", True),
)


def non_dominated(points: Sequence[tuple[float, float]], higher: tuple[bool, bool]) -> list[bool]:
    """For each (x, y) point, whether no other point dominates it; ``higher`` gives each
    coordinate's direction. Ties are not domination: equal points are all on the front."""
    if not points:
        return []
    signs = np.array([1.0 if h else -1.0 for h in higher])
    p = np.asarray(points, dtype=float) * signs  # now higher is better on both
    at_least = (p[None, :, :] >= p[:, None, :]).all(axis=2)  # [i, j]: j ≥ i on both
    better = (p[None, :, :] > p[:, None, :]).any(axis=2)  # [i, j]: j > i on one
    return [not bool(row.any()) for row in at_least & better]


@dataclass(frozen=True)
class ParetoPoint:
    label: str
    config: str
    x: Stat  # the cost over seeds
    y: Stat  # quality over seeds
    on_front: bool
    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class ParetoAxis:
    key: str  # the LeaderRow attribute, also the figure panel's name
    label: str  # with its unit
    measures: str
    higher_is_better: bool
    points: tuple[ParetoPoint, ...]  # by cost, best first

    @property
    def front(self) -> tuple[ParetoPoint, ...]:
        return tuple(p for p in self.points if p.on_front)


def pareto_axes(configs: Sequence[LeaderRow], higher: bool) -> list[ParetoAxis]:
    """One axis per cost in ``AXES`` with the trained configurations that have both values."""
    axes = []
    for key, label, measures, cost_higher in AXES:
        rows = [
            r
            for r in configs
            if not r.fixed and r.primary.mean is not None and getattr(r, key).mean is not None
        ]
        xy = [(float(getattr(r, key).mean), float(r.primary.mean or 0.0)) for r in rows]
        front = non_dominated(xy, (cost_higher, higher))
        points = [
            ParetoPoint(r.label, r.config, getattr(r, key), r.primary, f, r.run_ids)
            for r, f in zip(rows, front, strict=True)
        ]
        points.sort(key=lambda p: ((-1 if cost_higher else 1) * (p.x.mean or 0.0), p.label))
        axes.append(ParetoAxis(key, label, measures, cost_higher, tuple(points)))
    return axes
