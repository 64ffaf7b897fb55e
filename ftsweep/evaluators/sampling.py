"""Evaluators over several samples per example: pass@k and majority vote.

Both compare answers (after ``eval.answer_extraction``, when set) with the reference
by exact match with whitespace collapsed. They read every sample of an example
(``EvalExample.all_samples``), so they make sense with ``eval.generation.num_samples``
above 1; with one sample pass@1 and majority_vote equal exact_match.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from math import comb

from pydantic import ConfigDict

from ftsweep.evaluators.base import EvalExample, EvalScores, Evaluator, check_examples
from ftsweep.evaluators.registry import register

MAX_SAMPLES = 64  # eval.generation.num_samples's upper bound; pass@k names up to it
_WHITESPACE = re.compile(r"\s+")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples of which c are correct (Chen et al.
    2021): 1 - C(n-c, k) / C(n, k), the chance that k samples drawn without
    replacement from the n include a correct one. Exact in integers until the division."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def _norm(text: str) -> str:
    return _WHITESPACE.sub(" ", text.strip())


def _check_sample_counts(examples: Sequence[EvalExample]) -> int:
    counts = {len(e.all_samples) for e in examples}
    if len(counts) != 1:
        raise ValueError(f"examples have different numbers of samples: {sorted(counts)}")
    return counts.pop()


@register
class PassAtK(Evaluator):
    """pass@k for every k from 1 to the number of samples, averaged over examples."""

    name = "pass_at_k"
    needs_generation = True
    metrics = {f"pass@{k}": True for k in range(1, MAX_SAMPLES + 1)}
    bounds = {f"pass@{k}": (0.0, 1.0) for k in range(1, MAX_SAMPLES + 1)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="pass_at_k params")

    @classmethod
    def metrics_for(cls, num_samples: int) -> dict[str, bool]:
        return {f"pass@{k}": True for k in range(1, num_samples + 1)}

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        check_examples(examples)
        n = _check_sample_counts(examples)
        per_example: list[tuple[str, str, float]] = []
        totals = [0.0] * n
        for e in examples:
            c = sum(_norm(s) == _norm(e.reference) for s in e.all_samples)
            for k in range(1, n + 1):
                value = pass_at_k(n, c, k)
                totals[k - 1] += value
                per_example.append((e.example_id, f"pass@{k}", value))
        per_example.sort(key=lambda row: int(row[1].split("@")[1]))  # metric by metric
        return EvalScores(
            aggregate={f"pass@{k}": totals[k - 1] / len(examples) for k in range(1, n + 1)},
            per_example=per_example,
        )


def majority_answer(samples: Sequence[str]) -> str | None:
    """The most common non-empty answer; a tie goes to the one drawn first."""
    votes = Counter(a for a in (_norm(s) for s in samples) if a)
    if not votes:
        return None
    best = max(votes.values())
    return next(a for a in (_norm(s) for s in samples) if votes.get(a) == best)


@register
class MajorityVote(Evaluator):
    """1 when the most common answer among an example's samples is the reference
    (self-consistency, Wang et al. 2022). Samples without an answer do not vote."""

    name = "majority_vote"
    needs_generation = True
    metrics = {"majority_vote": True}
    bounds = {"majority_vote": (0.0, 1.0)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="majority_vote params")

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        check_examples(examples)
        _check_sample_counts(examples)
        values = [
            (e.example_id, float(majority_answer(e.all_samples) == _norm(e.reference)))
            for e in examples
        ]
        return EvalScores(
            aggregate={"majority_vote": sum(v for _, v in values) / len(values)},
            per_example=[(i, "majority_vote", v) for i, v in values],
        )
