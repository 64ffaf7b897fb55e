"""Decision cards: the report's first answers to "which config should I use?".

Each card picks one leaderboard row (a method's best config on one set of inputs) by a
stated rule and says why, with the numbers a reader can check against ``ftsweep
query``. A card whose rule picks nothing says so instead of picking something else.
The five rules:

1. **Best overall** — first on the leaderboard; the evidence adds the pairwise
   verdict against the runner-up.
2. **Best under the memory budget** — the best row whose every seed's device peak is
   within ``report.memory_budget_mb`` (or ``--memory-budget-mb``): a config that fits
   only on average would not fit on the machine. Trained rows only (the question is how
   to fine-tune within the budget). No budget, no pick.
3. **Best per training hour** — the largest gain per hour of training loop: over the
   untrained base model where the experiment has one (a fixed reference), else the
   metric itself (higher-is-better metrics only: a loss per hour means nothing).
4. **Smallest adapter within 1 point of the best** — the least on disk among trained
   rows within one point of the best mean (1% of the metric's declared range: 0.01
   on [0, 1], 1 on [0, 100]; 1% of the best value for an unbounded metric).
5. **Most stable across seeds** — the smallest seed std among rows with two seeds or
   more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftsweep.report.compare import PairRow
from ftsweep.report.numbers import fmt_interval, fmt_num, fmt_range
from ftsweep.report.rows import LeaderRow, metric_range
from ftsweep.report.stats import Bounds, Stat

NO_BUDGET = (
    "no memory budget given: set report.memory_budget_mb in the experiment file "
    "or pass `ftsweep report --memory-budget-mb MB`"
)


@dataclass(frozen=True)
class Card:
    title: str
    label: str | None  # None: the rule picked no row
    config: str
    evidence: str
    run_ids: tuple[str, ...]


def _measured(stat: Stat, unit: str) -> str:
    """ "1,500 MB [1,480, 1,520] over 3 seeds": a cost with its unit and seed interval."""
    bracket = f" {fmt_range(stat)}" if stat.low is not None else ""
    return f"{fmt_num(stat.mean)} {unit}{bracket} over {stat.n} seed{'s' if stat.n != 1 else ''}"


def _card(title: str, row: LeaderRow | None, evidence: str) -> Card:
    if row is None:
        return Card(title, None, "", evidence, ())
    return Card(title, row.label, row.config, evidence, row.run_ids)


def one_point(best: float, bounds: Bounds) -> tuple[float, str]:
    """One "point" of a metric and how it was set (see rule 4 of the module docstring)."""
    low, high = bounds
    if low is not None and high is not None:
        return (high - low) / 100, f"1% of its range [{fmt_num(low)}, {fmt_num(high)}]"
    return abs(best) / 100 or 0.01, "1% of the best value (the metric has no upper bound)"


def _best(best: LeaderRow, pairs: Sequence[PairRow], metric: str) -> Card:
    why = f"{metric} {fmt_interval(best.primary)}, ranked first"
    # pairs come in leaderboard order, so the best row's first pair is with the runner-up
    mine = [p for p in pairs if best.label in (p.a, p.b)]
    if mine:
        beaten = sum(p.better == best.label for p in mine)
        why += f"; beats {beaten} of the {len(mine)} other methods"
        runner = mine[0].b if mine[0].a == best.label else mine[0].a
        why += f"; against the runner-up {runner}: {mine[0].verdict}"
    return _card("Best overall", best, why)


def _budget(scored: list[LeaderRow], metric: str, budget: float | None) -> Card:
    if budget is None:
        return _card("Best under a memory budget", None, NO_BUDGET)
    trained = [r for r in scored if not r.fixed]
    fits = [
        r for r in trained if r.peak_memory_max_mb is not None and r.peak_memory_max_mb <= budget
    ]
    pick = fits[0] if fits else None
    why = (
        f"{metric} {fmt_interval(pick.primary)}; peak memory "
        f"{_measured(pick.peak_memory_mb, 'MB')}, highest seed {fmt_num(pick.peak_memory_max_mb)} MB"
        if pick
        else "no trained config fits: the least peak memory (highest seed) is "
        f"{fmt_num(_least_memory(trained))} MB"
    )
    return _card(f"Best under {fmt_num(budget)} MB peak memory", pick, why)


def _least_memory(rows: list[LeaderRow]) -> float | None:
    peaks = [r.peak_memory_max_mb for r in rows if r.peak_memory_max_mb is not None]
    return min(peaks) if peaks else None


def _per_hour(scored: list[LeaderRow], metric: str, higher: bool) -> Card:
    title = "Best per training hour"
    base = next((r for r in scored if r.fixed), None)
    timed = [r for r in scored if not r.fixed and r.train_time_s.mean]
    if base is None and not higher:
        return _card(
            title, None, f"needs the untrained base model: {metric} per hour means nothing"
        )
    if not timed:
        return _card(title, None, "no trained config recorded its training-loop time")
    assert all(r.primary.mean is not None and r.train_time_s.mean for r in timed)
    ref = base.primary.mean if base is not None else 0.0
    sign = 1.0 if higher else -1.0

    def rate(r: LeaderRow) -> float:
        return sign * (r.primary.mean - ref) * 3600 / r.train_time_s.mean  # type: ignore[operator]

    pick = max(timed, key=rate)
    over = f" over {base.label} ({fmt_num(ref)})" if base is not None else ""
    why = (
        f"{fmt_num(rate(pick))} {metric}{over} gained per hour of training loop: "
        f"{metric} {fmt_interval(pick.primary)} in {_measured(pick.train_time_s, 's')}"
    )
    return _card(title, pick, why)


def _smallest(scored: list[LeaderRow], metric: str, bounds: Bounds) -> Card:
    best = next(r for r in scored if r.primary.mean is not None)
    assert best.primary.mean is not None
    point, how = one_point(best.primary.mean, bounds)
    title = f"Smallest adapter within {fmt_num(point)} of the best"
    near = [
        r
        for r in scored
        if not r.fixed
        and r.artifact_size_mb.mean is not None
        and abs(r.primary.mean - best.primary.mean) <= point  # type: ignore[operator]
    ]
    pick = min(near, key=lambda r: (r.artifact_size_mb.mean, r.rank), default=None)
    if pick is None:
        return _card(title, None, "no trained config near the best recorded its size on disk")
    assert pick.primary.mean is not None
    why = (
        f"{fmt_num(pick.artifact_size_mb.mean)} MB on disk "
        f"({fmt_num(pick.trainable_params.mean)} trainable parameters); {metric} "
        f"{fmt_interval(pick.primary)}, {fmt_num(best.primary.mean - pick.primary.mean)} "
        f"from the best (1 point = {how})"
    )
    return _card(title, pick, why)


def _stable(scored: list[LeaderRow]) -> Card:
    seeded = [r for r in scored if r.primary.std is not None]
    pick = min(seeded, key=lambda r: (r.primary.std, r.rank), default=None)
    why = (
        f"seed std {fmt_num(pick.primary.std)} over n={pick.primary.n} seeds; "
        f"mean {fmt_interval(pick.primary)}"
        if pick
        else "no config has two seeds"
    )
    return _card("Most stable across seeds", pick, why)


def decision_cards(
    rows: Sequence[LeaderRow],
    metric: str,
    higher: bool,
    memory_budget_mb: float | None = None,
    pairs: Sequence[PairRow] = (),
) -> list[Card]:
    """The five cards over the leaderboard ``rows`` (best first); none without a score."""
    scored = [r for r in rows if r.primary.mean is not None]
    if not scored:
        return []
    return [
        _best(scored[0], pairs, metric),
        _budget(scored, metric, memory_budget_mb),
        _per_hour(scored, metric, higher),
        _smallest(scored, metric, metric_range(metric)),
        _stable(scored),
    ]
