"""Statistics for comparing fine-tuning methods; scipy supplies the distributions.

* A cell's interval over seeds is a 95% Student-t interval (mean ± t·s/√n).
* Over examples it is a 95% percentile bootstrap of the mean (fixed seed).
* Two methods' per-example scores are compared with McNemar's exact test when every
  score is 0 or 1, and otherwise with the sign-flip permutation test below; the p-values
  of one table are Holm-corrected together (``holm``).

The paired permutation test is a two-sided sign-flip permutation test on per-example score
differences (H0: the two methods' scores are exchangeable on each example, so each
difference is equally likely to have either sign). It is exact (all 2^n sign vectors)
for n <= 16 examples, and otherwise a Monte-Carlo test with 10,000 random sign vectors
from a fixed seed, so the same data always gives the same p-value. Chosen over a
t-test because per-example metrics (exact match, BLEU) are far from normal.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

EXACT_MAX_N = 16
N_RESAMPLES = 10_000
SEED = 0
TEST_NAME = (
    "McNemar's exact test for 0/1 scores, else a two-sided paired sign-flip permutation "
    f"test (exact for n ≤ {EXACT_MAX_N}, else {N_RESAMPLES:,} resamples, seed {SEED}), "
    "on per-example scores averaged over seeds; Holm-corrected across the table"
)


CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Stat:
    """Mean of n finite values, their sample std and a 95% interval of the mean.

    ``std``, ``low`` and ``high`` are None where n is too small for them (n < 2).
    ``clipped`` is True when the interval reached past the value's possible range and
    was cut to it (``summarize``'s ``bounds``).
    """

    mean: float | None
    std: float | None
    n: int
    low: float | None = None
    high: float | None = None
    clipped: bool = False


Bounds = tuple[float | None, float | None]
UNBOUNDED: Bounds = (None, None)
NON_NEGATIVE: Bounds = (0.0, None)  # costs: memory, times, sizes, counts, throughput


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


@functools.lru_cache(maxsize=256)
def t_quantile(df: int) -> float:
    """The two-sided 95% Student-t quantile at ``df`` degrees of freedom (cached: scipy's
    ppf costs about half a millisecond, and a large report summarises thousands of cells)."""
    return float(sps.t.ppf(0.5 + CONFIDENCE / 2, df))


def summarize(values: Sequence[float | None], bounds: Bounds = UNBOUNDED) -> Stat:
    """Mean, std and 95% t-interval over the finite values (missing ones left out).

    A t-interval is symmetric, so for a bounded value (accuracy in [0, 1], a loss ≥ 0)
    it can reach past the bound: it is then cut at ``bounds`` and marked ``clipped``.
    The mean of values inside the bounds is inside them, so only the ends move.
    """
    xs = _finite(values)
    if not xs:
        return Stat(None, None, 0)
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return Stat(mean, None, 1)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    half = t_quantile(len(xs) - 1) * std / math.sqrt(len(xs))
    low, high = mean - half, mean + half
    floor, ceiling = bounds
    clipped = (floor is not None and low < floor) or (ceiling is not None and high > ceiling)
    if floor is not None:
        low = max(low, floor)
    if ceiling is not None:
        high = min(high, ceiling)
    return Stat(mean, std, len(xs), low, high, clipped)


def bootstrap_mean(values: Sequence[float | None], seed: int = SEED) -> Stat:
    """Mean with a 95% percentile-bootstrap interval over the values (examples).

    Deterministic: the resamples come from ``seed``. Under 2 values there is no interval.
    """
    xs = np.asarray(_finite(values), dtype=float)
    n = len(xs)
    if n == 0:
        return Stat(None, None, 0)
    if n < 2:
        return Stat(float(xs[0]), None, 1)
    rng = np.random.default_rng(seed)
    means = np.empty(BOOTSTRAP_RESAMPLES)
    for start in range(0, BOOTSTRAP_RESAMPLES, 1000):  # chunks bound memory
        size = min(1000, BOOTSTRAP_RESAMPLES - start)
        means[start : start + size] = xs[rng.integers(0, n, size=(size, n))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Stat(float(xs.mean()), float(xs.std(ddof=1)), n, float(low), float(high))


def is_binary(values: Sequence[float]) -> bool:
    """True when every value is exactly 0 or 1 (a pass/fail metric)."""
    return len(values) > 0 and all(v in (0.0, 1.0) for v in values)


def mcnemar_exact_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes (None without pairs).

    Only discordant pairs count: under H0 each is equally likely to favour a or b,
    so the count favouring a is Binomial(discordant, 1/2).
    """
    if not a:
        return None
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x == 1.0 and y == 0.0)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if x == 0.0 and y == 1.0)
    if a_only + b_only == 0:
        return 1.0
    return float(sps.binomtest(a_only, a_only + b_only, 0.5).pvalue)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None entries stay None)."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))  # adjusted values never decrease
        adjusted[i] = running
    return adjusted


def paired_sign_flip_p(diffs: Sequence[float]) -> float | None:
    """Two-sided p-value that the mean paired difference is zero (None if no pairs)."""
    d = np.asarray([x for x in diffs if math.isfinite(x)], dtype=float)
    n = len(d)
    if n == 0:
        return None
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, observed)  # float noise must not turn ties into wins
    if n <= EXACT_MAX_N:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        flipped = np.abs(((bits * 2 - 1) * d).mean(axis=1))
        return float(np.mean(flipped >= observed - tol))
    rng = np.random.default_rng(SEED)
    hits = 0
    for start in range(0, N_RESAMPLES, 1000):  # chunks bound memory for large eval sets
        size = min(1000, N_RESAMPLES - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
        hits += int(np.sum(np.abs((signs * d).mean(axis=1)) >= observed - tol))
    # +1 in both: the observed sign vector counts as one resample (never report p = 0)
    return (hits + 1) / (N_RESAMPLES + 1)


CORPUS_RESAMPLES = 1_000  # sacrebleu's default for its paired bootstrap
_CHUNK = 100


def _resampled_scores(
    stats: list[np.ndarray], score: Callable[[np.ndarray], float], seed: int
) -> list[np.ndarray]:
    """Corpus scores of each system over the same resamples of examples (rows)."""
    n = len(stats[0])
    rng = np.random.default_rng(seed)
    out: list[list[float]] = [[] for _ in stats]
    for start in range(0, CORPUS_RESAMPLES, _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, CORPUS_RESAMPLES - start), n))
        for k, s in enumerate(stats):
            out[k] += [score(t) for t in s[idx].sum(axis=1)]
    return [np.asarray(o) for o in out]


def corpus_bootstrap(
    stats: np.ndarray, score: Callable[[np.ndarray], float], seed: int = SEED
) -> Stat:
    """A corpus score (e.g. BLEU) with a 95% percentile-bootstrap interval over examples.

    ``stats`` holds one row of sufficient statistics per example; ``score`` turns column
    sums into the corpus score, so every resample is scored as a corpus.
    """
    n = len(stats)
    if n == 0:
        return Stat(None, None, 0)
    full = score(stats.sum(axis=0))
    if n < 2:
        return Stat(full, None, 1)
    (samples,) = _resampled_scores([stats], score, seed)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Stat(full, float(samples.std(ddof=1)), n, float(low), float(high))


def paired_corpus_bootstrap_p(
    a: np.ndarray, b: np.ndarray, score: Callable[[np.ndarray], float], seed: int = SEED
) -> float | None:
    """Two-sided p-value of a corpus-score difference by paired bootstrap over examples.

    As sacrebleu's paired bootstrap: both systems are scored on the same resampled
    example sets; the resampled differences, shifted to mean zero (H0), are compared
    with the observed difference. Rows of ``a`` and ``b`` are the same examples.
    """
    if len(a) == 0:
        return None
    observed = abs(score(a.sum(axis=0)) - score(b.sum(axis=0)))
    sa, sb = _resampled_scores([a, b], score, seed)
    diffs = sa - sb
    tol = 1e-12 * max(1.0, observed)
    hits = int(np.sum(np.abs(diffs - diffs.mean()) >= observed - tol))
    return (hits + 1) / (CORPUS_RESAMPLES + 1)
