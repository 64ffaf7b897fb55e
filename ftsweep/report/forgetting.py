"""The forgetting section: per method, the quality a fine-tune gained against the
general ability it lost (the ``forgetting`` evaluator's probe loss, after − before).

One row per leaderboard row (a method's best config), built from its seed statistics:

* quality — the primary metric over seeds, with its 95% t-interval;
* gained — that quality minus the untrained ``base`` model's, in the metric's better
  direction (positive = better than base). The base model is not trained, so every
  seed of it scores the same: it is a fixed reference and the interval of the gain is
  the method's interval shifted by it. Without a ``base`` row, there is no gain to show;
* forgetting — probe loss after − before over seeds, with its 95% t-interval
  (positive = general text got harder to predict); and the probe loss after, for scale.

Pure: works on ``LeaderRow``-shaped objects, no SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftsweep.report.stats import Stat

METRIC = "forgetting"
AFTER = "probe_loss_after"
BASE_METHOD = "base"


@dataclass(frozen=True)
class ForgettingRow:
    label: str
    config: str
    quality: Stat  # the primary metric over seeds
    gained: Stat | None  # quality − base (better direction positive); None without a base row
    forgetting: Stat  # probe loss after − before, over seeds
    probe_after: Stat
    verdict: str  # one sentence a reader can act on


def _shift(stat: Stat, by: float, flip: bool) -> Stat:
    """``stat − by`` (or ``by − stat`` when ``flip``), interval included."""
    if stat.mean is None:
        return stat
    sign = -1.0 if flip else 1.0
    ends = [sign * (v - by) for v in (stat.low, stat.high) if v is not None]
    low, high = (min(ends), max(ends)) if len(ends) == 2 else (None, None)
    return Stat(sign * (stat.mean - by), stat.std, stat.n, low, high)


def _verdict(gained: Stat | None, forgetting: Stat) -> str:
    lost = forgetting.low is not None and forgetting.low > 0
    if forgetting.mean is None:
        return "no probe loss recorded"
    if gained is not None and gained.mean is not None:
        gain = gained.low is not None and gained.low > 0
        if gain and lost:
            return "gained quality, lost general ability"
        if gain:
            return "gained quality, no detectable loss of general ability"
        if lost:
            return "lost general ability without a detectable gain"
        return "no detectable change"
    if lost:
        return "lost general ability"
    return "no detectable loss of general ability"


def forgetting_rows(leaders: Sequence[Any], primary: str, higher: bool) -> list[ForgettingRow]:
    """One row per leaderboard row that has forgetting scores; [] when none has (no section)."""
    scored = [r for r in leaders if r.metrics.get(METRIC, Stat(None, None, 0)).n > 0]
    if not scored:
        return []
    base = next(
        (r for r in leaders if r.method == BASE_METHOD and r.primary.mean is not None), None
    )
    rows = []
    for r in scored:
        gained = None
        if base is not None and r is not base:
            gained = _shift(r.primary, base.primary.mean, flip=not higher)
        forgetting = r.metrics[METRIC]
        rows.append(
            ForgettingRow(
                label=r.label,
                config=r.config,
                quality=r.primary,
                gained=gained,
                forgetting=forgetting,
                probe_after=r.metrics.get(AFTER, Stat(None, None, 0)),
                verdict="the reference (not trained)"
                if r is base
                else _verdict(gained, forgetting),
            )
        )
    return rows
