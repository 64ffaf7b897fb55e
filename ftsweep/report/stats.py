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


# float(scipy.stats.t.ppf(0.975, df)) for df = 1..60, bit for bit (tests check it): the
# cells of a report have a handful of seeds, and importing scipy.stats or scipy.special
# costs a report of 1,000 runs most of a second to a second and a half.
_T_975 = (
    12.706204736174694,
    4.302652729749462,
    3.1824463052837078,
    2.7764451051977934,
    2.5705818356363146,
    2.4469118511449786,
    2.364624251592784,
    2.306004135204166,
    2.262157162798205,
    2.228138851986274,
    2.200985160091639,
    2.1788128296672284,
    2.1603686564627913,
    2.144786687917804,
    2.131449545559776,
    2.1199052992212546,
    2.1098155778333156,
    2.1009220402410382,
    2.0930240544083087,
    2.085963447265864,
    2.0796138447276795,
    2.0738730679040254,
    2.0686576104190486,
    2.0638985616280245,
    2.0595385527532972,
    2.0555294386428735,
    2.0518305164802846,
    2.0484071417952454,
    2.045229642132703,
    2.0422724563012378,
    2.039513446396408,
    2.0369333434601016,
    2.0345152974493383,
    2.0322445093177186,
    2.030107928250343,
    2.0280940009804502,
    2.0261924630291093,
    2.0243941639119694,
    2.022690920036761,
    2.021075390306273,
    2.019540970441376,
    2.0180817028184443,
    2.016692199227824,
    2.0153675744437636,
    2.014103388880846,
    2.012895598919429,
    2.0117405137297655,
    2.010634757624232,
    2.0095752371292392,
    2.008559112100761,
    2.007583770315836,
    2.006646805061688,
    2.0057459953178687,
    2.0048792881880564,
    2.0040447832891455,
    2.003240718847872,
    2.002465459291007,
    2.0017174841452356,
    2.000995378088267,
    2.0002978220142604,
)


_Z_975 = 1.959963984540054  # the normal 0.975 quantile (scipy.special.ndtri(0.975))
# Cornish-Fisher terms of the t quantile in powers of 1/df (Abramowitz & Stegun 26.7.5)
_T_TAIL = (
    (_Z_975**3 + _Z_975) / 4,
    (5 * _Z_975**5 + 16 * _Z_975**3 + 3 * _Z_975) / 96,
    (3 * _Z_975**7 + 19 * _Z_975**5 + 17 * _Z_975**3 - 15 * _Z_975) / 384,
    (79 * _Z_975**9 + 776 * _Z_975**7 + 1482 * _Z_975**5 - 1920 * _Z_975**3 - 945 * _Z_975) / 92160,
)


@functools.lru_cache(maxsize=256)
def t_quantile(df: int) -> float:
    """The two-sided 95% Student-t quantile at ``df`` degrees of freedom: from the table
    above for up to 60 (scipy's values, bit for bit), past it from the normal quantile's
    Cornish-Fisher expansion, within 1e-9 of scipy for every df > 60 (the report prints
    3 significant digits; importing scipy.special would cost ~0.3 s of a report)."""
    if CONFIDENCE == 0.95 and 1 <= df <= len(_T_975):
        return _T_975[df - 1]
    if CONFIDENCE == 0.95 and df > len(_T_975):
        return _Z_975 + sum(g / df ** (i + 1) for i, g in enumerate(_T_TAIL))
    from scipy import special  # lazy; stdtrit is what scipy.stats.t.ppf evaluates

    return float(special.stdtrit(df, 0.5 + CONFIDENCE / 2))


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
    from scipy import stats as sps  # lazy: ~1.3 s to import, needed only for 0/1 metrics

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
    total = d.sum()
    for start in range(0, N_RESAMPLES, 1000):  # chunks bound memory for large eval sets
        size = min(1000, N_RESAMPLES - start)
        # bit 1 keeps a difference's sign, 0 flips it: the flipped sum is 2 * kept - total,
        # one int8 matrix-vector product (~2x faster than multiplying ±1 floats), same draws
        bits = rng.integers(0, 2, size=(size, n))  # the draws rng.choice([-1, 1]) made
        kept = bits.astype(np.int8) @ d
        hits += int(np.sum(np.abs(2 * kept - total) / n >= observed - tol))
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
