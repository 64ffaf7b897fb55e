"""``ftsweep report --against OTHER``: two sweeps that share methods, side by side.

For each method both experiments ran (each one's best config, as its leaderboard has
it; each objective × method when the two have more than one objective between them):
the primary metric of each with its 95% t-interval over seeds, the difference
(this − other) with a 95% Welch t-interval over seeds, and the paired test of
``compare.py`` when the two sweeps scored the same test examples — the same eval
split file by fingerprint, not just the same example ids, since a data change may
keep the ids and change the contents. The p-values are Holm-corrected across the
shared methods and the verdict follows the report's one rule (``compare._verdict``):
a change is claimed only when the corrected test and the seed intervals agree.
Methods that only one experiment ran are listed.

Pure: works on two ReportViews and their rows; no SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ftsweep.report.compare import PairRow, _verdict, compare
from ftsweep.report.corpus import CorpusStats
from ftsweep.report.rows import objective_method
from ftsweep.report.stats import CONFIDENCE, Stat, holm
from ftsweep.store.stage import DEFAULT_OBJECTIVE


class DiffError(ValueError):
    """Two experiments that cannot be compared; the message says why."""


@dataclass(frozen=True)
class _Side:
    """A leaderboard row under an experiment-qualified label (compare's ``Row``)."""

    label: str
    primary: Stat
    run_ids: tuple[str, ...]
    fixed: bool = False  # a method that trains nothing: a fixed reference (compare.py)


@dataclass(frozen=True)
class DiffRow:
    method: str
    config: str  # this experiment's best config
    other_config: str
    this: Stat  # primary metric over seeds
    other: Stat
    diff: Stat  # this − other, 95% Welch t-interval over seeds
    pair: PairRow | None  # the paired test and verdict; None without shared test examples
    verdict: str


@dataclass(frozen=True)
class DiffView:
    experiment: str
    other: str
    primary_metric: str
    higher_is_better: bool
    same_examples: bool  # both scored the same eval-split file (by fingerprint)
    examples_note: str  # why there is no paired test, when there is none
    rows: tuple[DiffRow, ...]
    only_here: tuple[str, ...]  # methods only this experiment ran
    only_there: tuple[str, ...]


def welch_diff(a: Stat, b: Stat) -> Stat:
    """mean(a) − mean(b) with a 95% Welch t-interval from the two summaries.

    A side with one seed and no spread (an untrained base model) is a fixed value; with
    fewer than two seeds on both sides there is no interval.
    """
    from scipy.special import stdtrit  # the t quantile, without importing scipy.stats

    if a.mean is None or b.mean is None:
        return Stat(None, None, 0)
    mean = a.mean - b.mean
    parts = [(s.std**2 / s.n, s.n) for s in (a, b) if s.std is not None and s.n >= 2]
    if not parts:
        return Stat(mean, None, min(a.n, b.n))
    var = sum(v for v, _ in parts)
    if var == 0:
        return Stat(mean, 0.0, min(a.n, b.n), mean, mean)
    df = var**2 / sum(v**2 / (n - 1) for v, n in parts)
    half = float(stdtrit(df, 0.5 + CONFIDENCE / 2)) * math.sqrt(var)
    return Stat(mean, math.sqrt(var), min(a.n, b.n), mean - half, mean + half)


def _best_per_method(view: Any, by_objective: bool = False) -> dict[str, Any]:
    """Each method's first (best) leaderboard row; with ``by_objective``, each objective ×
    method's ("lora (dpo)"), so a DPO row is never set against an SFT one."""
    out: dict[str, Any] = {}
    for row in view.leaderboard:
        out.setdefault(
            objective_method(row.method, _objective(row)) if by_objective else row.method, row
        )
    return out


def _objective(row: Any) -> str:
    return str(getattr(row, "objective", DEFAULT_OBJECTIVE))  # rows built by hand have none


def _eval_fingerprints(runs: Sequence[dict[str, Any]], split: str | None) -> set[str | None]:
    key = f"data.{split}" if split else None
    return {(r.get("fingerprints") or {}).get(key) if key else None for r in runs}


def build_diff(
    this: Any,
    this_runs: Sequence[dict[str, Any]],
    other: Any,
    other_runs: Sequence[dict[str, Any]],
    split: str | None,
    examples: Sequence[dict[str, Any]],
    corpus: CorpusStats | None = None,
) -> DiffView:
    """Compare two experiments' ReportViews; ``examples`` holds both's per-example rows."""
    if this.primary_metric != other.primary_metric:
        raise DiffError(
            f"experiments {this.experiment!r} and {other.experiment!r} rank by different "
            f"primary metrics ({this.primary_metric} and {other.primary_metric}): "
            "nothing to compare"
        )
    objectives = {_objective(r) for v in (this, other) for r in v.leaderboard}
    here = _best_per_method(this, len(objectives) > 1)
    there = _best_per_method(other, len(objectives) > 1)
    shared = sorted(set(here) & set(there))
    if not shared:
        raise DiffError(
            f"experiments {this.experiment!r} and {other.experiment!r} share no method with a "
            f"complete run ({this.experiment}: {', '.join(sorted(here)) or 'none'}; "
            f"{other.experiment}: {', '.join(sorted(there)) or 'none'})"
        )
    fps = _eval_fingerprints(this_runs, split) | _eval_fingerprints(other_runs, split)
    same = len(fps) == 1 and None not in fps
    note = "" if same else f"their {split or 'eval'} split files differ (data.{split} fingerprint)"
    pairs: list[PairRow | None] = []
    for method in shared:
        a, b = here[method], there[method]
        sides = [
            _Side(f"{this.experiment}: {method}", a.primary, a.run_ids, a.fixed),
            _Side(f"{other.experiment}: {method}", b.primary, b.run_ids, b.fixed),
        ]
        pairs.append(compare(sides, examples, this.higher_is_better, corpus)[0] if same else None)
    corrected = holm([p.p_value if p is not None else None for p in pairs])
    rows = []
    for method, pair, q in zip(shared, pairs, corrected, strict=True):
        a, b = here[method], there[method]
        if pair is not None:
            pair = _verdict(replace(pair, p_holm=q), this.higher_is_better)
        verdict = pair.verdict if pair is not None else f"no paired test: {note}"
        rows.append(
            DiffRow(
                method=method,
                config=a.config,
                other_config=b.config,
                this=a.primary,
                other=b.primary,
                diff=welch_diff(a.primary, b.primary),
                pair=pair,
                verdict=verdict,
            )
        )
    return DiffView(
        experiment=this.experiment,
        other=other.experiment,
        primary_metric=this.primary_metric,
        higher_is_better=this.higher_is_better,
        same_examples=same,
        examples_note=note,
        rows=tuple(rows),
        only_here=tuple(sorted(set(here) - set(there))),
        only_there=tuple(sorted(set(there) - set(here))),
    )
