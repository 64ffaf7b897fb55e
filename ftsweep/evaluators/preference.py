"""preference_accuracy: how often the policy prefers the chosen answer of a held-out pair.

For each preference record the worker sums the policy's log-probabilities of the
chosen and of the rejected answer after the same prompt (eos included, as trained) and
passes the margins ``log p(chosen) - log p(rejected)`` to ``from_margins``. Accuracy is
the share of pairs with a positive margin (a tie counts as wrong: the model did not
prefer the chosen answer); the mean margin says by how much, in nats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from pydantic import ConfigDict

from ftsweep.evaluators.base import EvalExample, EvalScores, Evaluator
from ftsweep.evaluators.registry import register


@register
class PreferenceAccuracy(Evaluator):
    """preference_accuracy (share of pairs with margin > 0) and preference_margin (mean)."""

    name = "preference_accuracy"
    needs_generation = False
    # What the worker computes for it: the policy's log-prob margins of (chosen, rejected).
    reads_pairs: ClassVar[str] = "log_prob"
    metrics = {"preference_accuracy": True, "preference_margin": True}
    bounds = {"preference_accuracy": (0.0, 1.0), "preference_margin": (None, None)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="preference_accuracy params")

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        raise TypeError(
            "preference_accuracy scores log-prob margins, not generations: the worker "
            "computes them per pair and calls PreferenceAccuracy.from_margins()"
        )

    @classmethod
    def from_margins(cls, margins: Mapping[str, float]) -> EvalScores:
        """Scores from ``{example_id: log p(chosen) - log p(rejected)}`` (nats)."""
        return margin_scores(margins, "preference_accuracy", "preference_margin")


def margin_scores(margins: Mapping[str, float], accuracy: str, mean: str) -> EvalScores:
    """Per pair: ``accuracy`` 1 when the chosen answer's margin is positive, ``mean`` the
    margin itself; aggregated as their means (shared by the pair evaluators)."""
    if not margins:
        raise ValueError(f"no {accuracy.removesuffix('_accuracy')} margins to score")
    rows: list[tuple[str, str, float]] = []
    for example_id, margin in margins.items():
        rows.append((example_id, accuracy, 1.0 if margin > 0 else 0.0))
        rows.append((example_id, mean, float(margin)))
    n = len(margins)
    return EvalScores(
        aggregate={
            accuracy: sum(1 for m in margins.values() if m > 0) / n,
            mean: sum(margins.values()) / n,
        },
        per_example=rows,
    )
