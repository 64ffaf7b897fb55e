"""Pairwise verdicts between the leaderboard's rows: when may the report say "A beats B"?

Two pieces of evidence must agree, or the verdict is "no detectable difference":

1. **Examples.** A paired test on the per-example primary metric (each example's
   score averaged over the row's seeds): McNemar's exact test when every score is 0/1,
   else the paired sign-flip permutation test; for a corpus metric (BLEU, chrF) a
   paired bootstrap that scores each resample of examples as a corpus. The p-values of all pairs of the table
   are Holm-corrected together, and the corrected p must be below ``ALPHA``.
2. **Seeds.** Both rows have at least two seeds and their 95% t-intervals over seeds
   do not overlap, with the better one on the metric's good side. A *fixed reference* —
   a row whose method trains nothing (the untrained base model: one greedy evaluation,
   the same for every seed, so it has no seed spread and one value) — has no interval
   to overlap: against it, the other row's seed interval must exclude the reference's
   value. Two fixed references differ only through the examples, so the test decides.

Pure functions over view-model rows; no SQL, no formatting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any, Protocol

import numpy as np

from ftsweep.report.corpus import CorpusStats
from ftsweep.report.stats import (
    Stat,
    holm,
    is_binary,
    mcnemar_exact_p,
    paired_corpus_bootstrap_p,
    paired_sign_flip_p,
)

ALPHA = 0.05
MCNEMAR = "McNemar exact"
PERMUTATION = "sign-flip permutation"
CORPUS_BOOTSTRAP = "paired corpus bootstrap"


class Row(Protocol):
    """What a comparison needs of a leaderboard row (read-only)."""

    @property
    def label(self) -> str: ...
    @property
    def primary(self) -> Stat: ...
    @property
    def run_ids(self) -> tuple[str, ...]: ...
    @property
    def fixed(self) -> bool: ...  # a fixed reference (trains nothing): no seed noise


@dataclass(frozen=True)
class PairRow:
    a: str
    b: str
    diff: float | None  # mean(a) - mean(b) of the primary metric over seeds
    seeds: tuple[int, int]  # seeds behind a and b
    intervals_separate: bool | None  # the seed check agrees; None: it cannot be made
    seed_check: str  # how the seeds were checked, e.g. "a's interval vs b's fixed value"
    n_examples: int
    test: str | None  # MCNEMAR, PERMUTATION, or None without shared examples
    p_value: float | None
    p_holm: float | None
    better: str | None  # the row that beats the other, only when both checks agree
    verdict: str


class ExamplesByRun(dict[str, list[dict[str, Any]]]):
    """Per-example rows by run_id, with the per-example means already asked of them
    (the leaderboard's bootstrap and the pairwise tests ask the same rows' means)."""

    def __init__(self) -> None:
        super().__init__()
        self.means: dict[tuple[str, ...], dict[str, float]] = {}


Examples = Iterable[dict[str, Any]] | Mapping[str, Sequence[dict[str, Any]]]


def group_by_run(rows: Examples) -> Mapping[str, Sequence[dict[str, Any]]]:
    """Per-example rows by run_id (an ``ExamplesByRun``): one pass, so each leaderboard
    row's mean reads only its runs. Rows already grouped are returned as they are."""
    if isinstance(rows, Mapping):
        return rows
    out = ExamplesByRun()
    for row in rows:
        out.setdefault(row["run_id"], []).append(row)
    return out


def per_example(rows: Examples, run_ids: Iterable[str]) -> dict[str, float]:
    """Per-example mean over the given runs (seeds) of one leaderboard row.

    ``rows``: per-example rows, or the same grouped by run (``group_by_run``), which a
    caller asking for many rows' means passes to read each row once, not once per row.
    The result is shared with later callers asking for the same runs: do not modify it.
    """
    grouped = group_by_run(rows)
    key = tuple(sorted(set(run_ids)))  # the order the query returns rows in
    memo = grouped.means if isinstance(grouped, ExamplesByRun) else {}
    if key in memo:
        return memo[key]
    acc: dict[str, list[float]] = defaultdict(list)
    for rid in key:
        for row in grouped.get(rid, ()):
            acc[str(row["example_id"])].append(float(row["value"]))
    memo[key] = means = {ex: sum(v) / len(v) for ex, v in acc.items()}
    return means


def _separate(a: Stat, b: Stat) -> bool | None:
    """Do the seed intervals agree that one row is better (no overlap)? None: can't tell."""
    if None in (a.low, a.high, b.low, b.high):
        return None
    assert a.low is not None and a.high is not None and b.low is not None and b.high is not None
    return a.low > b.high or b.low > a.high


def _excludes(interval: Stat, value: float | None) -> bool | None:
    """Does a seed interval exclude a fixed value? None without an interval or a value."""
    if interval.low is None or interval.high is None or value is None:
        return None
    return value < interval.low or value > interval.high


def seed_evidence(a: Row, b: Row) -> tuple[bool | None, str]:
    """The seed check of a pair (see the module docstring) and how it was made."""
    if a.fixed and b.fixed:
        return True, "both fixed references (no seed noise)"
    if a.fixed or b.fixed:
        ref, other = (a, b) if a.fixed else (b, a)
        return (
            _excludes(other.primary, ref.primary.mean),
            f"{other.label}'s seed interval vs {ref.label}'s fixed value",
        )
    return _separate(a.primary, b.primary), "seed intervals"


def _corpus_test(a: Row, b: Row, corpus: CorpusStats) -> tuple[int, str | None, float | None]:
    sa, sb = corpus.for_runs(a.run_ids), corpus.for_runs(b.run_ids)
    shared = sorted(set(sa) & set(sb))
    if not shared:
        return 0, None, None
    xa, xb = np.stack([sa[e] for e in shared]), np.stack([sb[e] for e in shared])
    return len(shared), CORPUS_BOOTSTRAP, paired_corpus_bootstrap_p(xa, xb, corpus.score)


def _tested(
    a: Row, b: Row, means: dict[str, dict[str, float]], corpus: CorpusStats | None
) -> PairRow:
    sa, sb = means[a.label], means[b.label]
    shared = sorted(set(sa) & set(sb))
    xa, xb = [sa[e] for e in shared], [sb[e] for e in shared]
    test, p = None, None
    n_examples = len(shared)
    if corpus is not None:
        n_examples, test, p = _corpus_test(a, b, corpus)
    elif shared and is_binary(xa) and is_binary(xb):
        test, p = MCNEMAR, mcnemar_exact_p(xa, xb)
    elif shared:
        test, p = PERMUTATION, paired_sign_flip_p([x - y for x, y in zip(xa, xb, strict=True)])
    diff = None
    if a.primary.mean is not None and b.primary.mean is not None:
        diff = a.primary.mean - b.primary.mean
    separate, how = seed_evidence(a, b)
    return PairRow(
        a=a.label,
        b=b.label,
        diff=diff,
        seeds=(a.primary.n, b.primary.n),
        intervals_separate=separate,
        seed_check=how,
        n_examples=n_examples,
        test=test,
        p_value=p,
        p_holm=None,
        better=None,
        verdict="",
    )


def _verdict(pair: PairRow, higher: bool) -> PairRow:
    significant = pair.p_holm is not None and pair.p_holm < ALPHA
    if significant and pair.intervals_separate and pair.diff:
        better = pair.a if (pair.diff > 0) == higher else pair.b
        worse = pair.b if better == pair.a else pair.a
        how = "" if pair.seed_check == "seed intervals" else f" ({pair.seed_check})"
        return replace(pair, better=better, verdict=f"{better} beats {worse}{how}")
    low, high = min(pair.seeds), max(pair.seeds)
    seeds = f"{low}–{high} seeds" if low != high else f"{low} seed{'s' if low != 1 else ''}"
    n = f"n = {pair.n_examples:,} examples, {seeds}"
    why = []
    if pair.intervals_separate is None:
        why.append("too few seeds for an interval")
    elif not pair.intervals_separate:
        fixed = pair.seed_check != "seed intervals"
        why.append(
            "the fixed value lies in the seed interval" if fixed else "seed intervals overlap"
        )
    if pair.p_holm is None:
        why.append("no shared per-example scores")
    elif not significant:
        why.append(f"corrected p ≥ {ALPHA}")
    return replace(pair, verdict=f"no detectable difference at {n} ({'; '.join(why)})")


def compare(
    rows: Sequence[Row],
    examples: Examples,
    higher: bool,
    corpus: CorpusStats | None = None,
) -> list[PairRow]:
    """Every pair of rows, tested, Holm-corrected across the table, with a verdict."""
    grouped = group_by_run(examples)
    means = {row.label: per_example(grouped, row.run_ids) for row in rows}
    pairs = [_tested(a, b, means, corpus) for a, b in combinations(rows, 2)]
    corrected = holm([p.p_value for p in pairs])
    return [_verdict(replace(p, p_holm=q), higher) for p, q in zip(pairs, corrected, strict=True)]
