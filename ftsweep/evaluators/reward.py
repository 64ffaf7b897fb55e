"""reward_accuracy: how often a reward model scores the chosen answer of a held-out pair
above the rejected one.

The worker scores ``prompt + chosen`` and ``prompt + rejected`` with the model's score
head (worker/reward.py, tokenised as the reward objective trains) and passes the margins
``score(chosen) - score(rejected)`` to ``from_margins``. Accuracy is the share of pairs
with a positive margin (a tie counts as wrong); the mean margin says by how much, in the
score's own units. Only a reward model (training.objective: reward) can be scored so,
and a reward model can be scored no other way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from pydantic import ConfigDict

from ftsweep.evaluators.base import EvalExample, EvalScores, Evaluator
from ftsweep.evaluators.preference import margin_scores
from ftsweep.evaluators.registry import register


@register
class RewardAccuracy(Evaluator):
    """reward_accuracy (share of pairs with margin > 0) and reward_margin (mean)."""

    name = "reward_accuracy"
    needs_generation = False
    # What the worker computes for it: the score head's margins of (chosen, rejected).
    reads_pairs: ClassVar[str] = "score"
    metrics = {"reward_accuracy": True, "reward_margin": True}
    bounds = {"reward_accuracy": (0.0, 1.0), "reward_margin": (None, None)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="reward_accuracy params")

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        raise TypeError(
            "reward_accuracy scores a reward model's score margins, not generations: the "
            "worker computes them per pair and calls RewardAccuracy.from_margins()"
        )

    @classmethod
    def from_margins(cls, margins: Mapping[str, float]) -> EvalScores:
        """Scores from ``{example_id: score(chosen) - score(rejected)}``."""
        return margin_scores(margins, "reward_accuracy", "reward_margin")
