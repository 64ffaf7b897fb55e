"""Per-example sufficient statistics of a corpus-level metric (BLEU, chrF).

The mean of sentence BLEU is not corpus BLEU (a corpus of 0.0 can sit beside a
sentence mean of 100), so for a metric whose evaluator declares
``aggregate = "corpus"`` the report resamples examples and scores each resample as a
corpus. The evaluator computes the statistics from the predictions and references the
store keeps; the report never knows which metric it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CorpusStats:
    """Sufficient statistics per run and example, and how to score their sums."""

    by_run: dict[str, dict[str, np.ndarray]]  # run_id → example_id → statistics row
    score: Callable[[np.ndarray], float]

    def for_runs(self, run_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Per example, the statistics summed over the runs (the seeds' outputs pooled)."""
        acc: dict[str, np.ndarray] = {}
        for rid in run_ids:
            for ex, row in self.by_run.get(rid, {}).items():
                acc[ex] = acc[ex] + row if ex in acc else row.copy()
        return acc


def corpus_stats(
    metric: str, evaluator_params: dict[str, Any] | None, texts: Sequence[dict[str, Any]]
) -> CorpusStats | None:
    """CorpusStats of ``metric`` from rows (run_id, example_id, prediction, reference).

    None when the metric's evaluator averages its per-example rows (or is unknown):
    the report then works on the per-example scores directly.
    """
    from ftsweep.evaluators import corpus_evaluator  # lazy: sacrebleu and friends

    evaluator = corpus_evaluator(metric, evaluator_params)
    if evaluator is None:
        return None
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in texts:
        grouped[row["run_id"]].append(row)
    by_run = {}
    for rid, rows in grouped.items():
        stats = evaluator.example_stats(
            [r["prediction"] or "" for r in rows], [r["reference"] or "" for r in rows]
        )
        by_run[rid] = {
            str(r["example_id"]): np.asarray(s, dtype=float)
            for r, s in zip(rows, stats, strict=True)
        }
    return CorpusStats(by_run, lambda totals: evaluator.score_stats(list(totals)))
