"""loss: eval loss and perplexity, from losses the worker computes.

This evaluator reads no generation (``needs_generation = False``). The worker runs
the model over each eval example's reference completion, sums the token
cross-entropy and counts the tokens, and passes those to ``Loss.from_losses``;
``score()`` cannot compute a loss from text and refuses.

The corpus loss is token-weighted (total nll / total tokens), as Trainer's eval_loss
is for equal-length batches and as perplexity is defined; averaging per-example means
instead would let a 3-token example weigh as much as a 3000-token one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import ConfigDict

from ftsweep.evaluators.base import EvalExample, EvalScores, Evaluator
from ftsweep.evaluators.registry import register


@register
class Loss(Evaluator):
    """eval_loss (mean token nll, lower is better) and perplexity = exp(eval_loss)."""

    name = "loss"
    needs_generation = False
    aggregate = "weighted"  # token-weighted; per-example rows are per-example means
    metrics = {"eval_loss": False, "perplexity": False}
    bounds = {"eval_loss": (0.0, None), "perplexity": (1.0, None)}  # perplexity = exp(loss)

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="loss params")

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        raise TypeError(
            "the loss evaluator scores losses, not generations: the worker computes "
            "(summed nll, n_tokens) per example and calls Loss.from_losses()"
        )

    @classmethod
    def from_losses(cls, per_example: Mapping[str, tuple[float, int]]) -> EvalScores:
        """Scores from ``{example_id: (summed token nll, n_tokens)}``.

        Per-example rows carry that example's mean token nll as "eval_loss". A NaN or
        infinite loss (a diverged model) is passed through, not rejected: it is the
        run's honest result. Zero tokens or a negative nll are caller bugs and raise.
        """
        if not per_example:
            raise ValueError("no example losses to score")
        rows: list[tuple[str, str, float]] = []
        total_nll, total_tokens = 0.0, 0
        for example_id, (nll, n_tokens) in per_example.items():
            if n_tokens <= 0:
                raise ValueError(f"example {example_id!r}: n_tokens must be > 0, got {n_tokens}")
            if nll < 0:
                raise ValueError(f"example {example_id!r}: summed nll must be >= 0, got {nll}")
            rows.append((example_id, "eval_loss", nll / n_tokens))
            total_nll += nll
            total_tokens += n_tokens
        eval_loss = total_nll / total_tokens
        return EvalScores(
            aggregate={"eval_loss": eval_loss, "perplexity": perplexity(eval_loss)},
            per_example=rows,
        )


def perplexity(mean_nll: float) -> float:
    """exp(mean_nll), saturating to inf instead of raising OverflowError."""
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return math.inf
