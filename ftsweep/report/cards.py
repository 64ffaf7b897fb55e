"""Decision cards: the report's first answers to "which config should I use?".

Each card picks one leaderboard row (a method's best config on one set of inputs) by a
stated rule and says why, with the numbers a reader can check against ``ftsweep
query``. A card whose rule picks nothing says so instead of picking something else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ftsweep.report.numbers import fmt_interval, fmt_num
from ftsweep.report.stats import Stat

NO_BUDGET = (
    "no memory budget given: set report.memory_budget_mb in the experiment file "
    "or pass `ftsweep report --memory-budget-mb MB`"
)


class Row(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def config(self) -> str: ...
    @property
    def primary(self) -> Stat: ...
    @property
    def trainable_params(self) -> Stat: ...
    @property
    def peak_memory_mb(self) -> Stat: ...
    @property
    def wall_time_s(self) -> Stat: ...
    @property
    def run_ids(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Card:
    title: str
    label: str | None  # None: the rule picked no row
    config: str
    evidence: str
    run_ids: tuple[str, ...]


def _card(title: str, row: Row | None, evidence: str) -> Card:
    if row is None:
        return Card(title, None, "", evidence, ())
    return Card(title, row.label, row.config, evidence, row.run_ids)


def _point(best: float) -> float:
    """One "point" of the metric: 0.01 on a 0–1 scale, 1 on a 0–100 scale (BLEU, chrF)."""
    return 0.01 if abs(best) <= 1.0 else 1.0


def decision_cards(
    rows: Sequence[Row], metric: str, higher: bool, memory_budget_mb: float | None = None
) -> list[Card]:
    """The five cards over the leaderboard ``rows`` (best first)."""
    scored = [r for r in rows if r.primary.mean is not None]
    if not scored:
        return []
    best = scored[0]
    assert best.primary.mean is not None
    cards = [_card("Best overall", best, f"{metric} {fmt_interval(best.primary)}, ranked first")]

    budget = memory_budget_mb
    if budget is None:
        cards.append(_card("Best under a memory budget", None, NO_BUDGET))
    else:
        fits = [
            r
            for r in scored
            if r.peak_memory_mb.mean is not None and r.peak_memory_mb.mean <= budget
        ]
        pick = fits[0] if fits else None
        why = (
            f"{metric} {fmt_interval(pick.primary)} at {fmt_num(pick.peak_memory_mb.mean)} MB"
            if pick
            else "no config fits"
        )
        cards.append(_card(f"Best under {fmt_num(budget)} MB peak memory", pick, why))

    if higher:
        timed = [r for r in scored if r.wall_time_s.mean]
        per_hour = {r.label: r.primary.mean * 3600 / r.wall_time_s.mean for r in timed}  # type: ignore[operator]
        pick = max(timed, key=lambda r: per_hour[r.label], default=None)
        why = (
            f"{fmt_num(per_hour[pick.label])} {metric} per training hour "
            f"({fmt_num(pick.wall_time_s.mean)} s)"
            if pick
            else "no run recorded its training time"
        )
        cards.append(_card("Best per training hour", pick, why))

    point = _point(best.primary.mean)
    near = [
        r
        for r in scored
        if abs(r.primary.mean - best.primary.mean) <= point  # type: ignore[operator]
        and r.trainable_params.mean is not None
    ]
    pick = min(near, key=lambda r: r.trainable_params.mean or 0.0, default=None)
    why = (
        f"{fmt_num(pick.trainable_params.mean)} trainable parameters, {metric} "
        f"{fmt_interval(pick.primary)} (within {fmt_num(point)} of the best)"
        if pick
        else "no config records its trainable parameters"
    )
    cards.append(_card(f"Smallest adapter within {fmt_num(point)} of the best", pick, why))

    seeded = [r for r in scored if r.primary.std is not None]
    pick = min(seeded, key=lambda r: r.primary.std or 0.0, default=None)
    why = (
        f"seed std {fmt_num(pick.primary.std)} over n={pick.primary.n} seeds"
        if pick
        else "no config has two seeds"
    )
    cards.append(_card("Most stable across seeds", pick, why))
    return cards
