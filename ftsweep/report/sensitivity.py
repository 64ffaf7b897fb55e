"""Sensitivity: how much the primary metric moves with the learning rate and with each
hyperparameter that varies, per method.

* **Learning-rate curves**: per trained method, one point per learning rate it was
  tried at — the best configuration at that rate (when other values vary too), mean
  over its seeds with the 95% seed interval as the band.
* **Heat maps**: per varied hyperparameter, a method × value grid; each cell is the
  mean over every complete run of the method with that value (all seeds and all other
  settings), with its interval; with several objectives, an objective × method grid
  (the objective itself gets no map: the rows are split by it). The shade ranks the cells of one map from worst (pale)
  to best (dark) in the metric's direction. A hyperparameter with more than
  ``MAX_HEAT_VALUES`` values (a search samples a new one per trial) gets a note instead
  of a grid nobody could read; the search sections show it.

Pure functions over rows; no SQL, no drawing (plots.py draws the curves).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftsweep.report.rows import LeaderRow, group_name, metric_range, objective_of
from ftsweep.report.stats import Stat, summarize

OBJECTIVE_KEY = "training.objective"

MAX_HEAT_VALUES = 12


@dataclass(frozen=True)
class LrPoint:
    lr: float
    stat: Stat  # the primary metric over the config's seeds
    config: str


@dataclass(frozen=True)
class LrCurve:
    method: str
    points: tuple[LrPoint, ...]  # by learning rate


def lr_curves(configs: Sequence[LeaderRow]) -> list[LrCurve]:
    """Per trained method, the best configuration at each learning rate (``configs`` is
    best first, so the first row seen at a rate is the best one there)."""
    best: dict[str, dict[float, LrPoint]] = defaultdict(dict)
    for row in configs:
        if row.fixed or row.lr is None or row.primary.mean is None:
            continue
        best[row.label].setdefault(row.lr, LrPoint(row.lr, row.primary, row.config))
    return [
        LrCurve(label, tuple(points[lr] for lr in sorted(points)))
        for label, points in sorted(best.items())
    ]


@dataclass(frozen=True)
class HeatCell:
    stat: Stat  # n = 0: the method never used this value
    shade: float  # 0 (worst of the map) .. 1 (best); 0 for an empty cell


@dataclass(frozen=True)
class HeatMap:
    param: str
    values: tuple[str, ...]  # JSON text of each value, sorted
    methods: tuple[str, ...]
    cells: dict[str, tuple[HeatCell, ...]]  # method → one cell per value
    note: str = ""  # why there is no grid (too many values); then values and cells are empty


def _sort_key(text: str) -> tuple[int, float, str]:
    value = json.loads(text)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), text)
    return (1, 0.0, text)


def heat_maps(
    complete: Sequence[dict[str, Any]],
    per_run: dict[str, dict[str, float | None]],
    primary: str,
    higher: bool,
) -> list[HeatMap]:
    """One map per hyperparameter that takes more than one value among complete runs."""
    acc: dict[str, dict[tuple[str, str], list[float | None]]] = defaultdict(
        lambda: defaultdict(list)
    )
    many = len({objective_of(run) for run in complete}) > 1
    for run in complete:
        # with several objectives a row is an objective × method, as on the leaderboard
        name = group_name(run, many)
        for param, value in (run.get("params") or {}).items():
            if param != "seed" and not (many and param == OBJECTIVE_KEY):  # rows split by it
                key = (name, json.dumps(value, sort_keys=True))
                acc[param][key].append(per_run.get(run["run_id"], {}).get(primary))
    bounds = metric_range(primary)
    maps = []
    for param in sorted(acc):
        cells = acc[param]
        values = tuple(sorted({v for _, v in cells}, key=_sort_key))
        if len(values) < 2:
            continue
        methods = tuple(sorted({m for m, _ in cells}))
        if len(values) > MAX_HEAT_VALUES:
            note = f"{len(values)} distinct values, too many for a grid (a search samples them)"
            maps.append(HeatMap(param, (), methods, {m: () for m in methods}, note))
            continue
        stats = {key: summarize(vals, bounds) for key, vals in cells.items()}
        means = [s.mean for s in stats.values() if s.mean is not None]
        lo, hi = (min(means), max(means)) if means else (0.0, 0.0)

        def shade(s: Stat, lo: float = lo, hi: float = hi) -> float:
            if s.mean is None or hi == lo:
                return 0.0 if s.mean is None else 1.0
            t = (s.mean - lo) / (hi - lo)
            return t if higher else 1.0 - t

        empty = Stat(None, None, 0)
        grid = {
            m: tuple(
                HeatCell(stats.get((m, v), empty), shade(stats.get((m, v), empty))) for v in values
            )
            for m in methods
        }
        maps.append(HeatMap(param, values, methods, grid))
    return maps
