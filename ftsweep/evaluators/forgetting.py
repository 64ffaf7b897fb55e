"""forgetting: the loss on a general-text probe before and after fine-tuning.

A fine-tune that wins on its task may do so by overwriting what the base model knew.
This evaluator measures that cost on a held-out probe of general text (shipped:
``data/probe/general.jsonl``, prose of the kind the base model was pretrained on, in
no fine-tuning format). The worker computes the probe's token losses twice in the same
process: on the model exactly as the run loads it, before the method is applied (same
dtype, same quantisation), and on the trained model after training; it passes both to
``Forgetting.from_probe``. Evaluating "before" in each run instead of caching it per
base model costs one forward pass over 64 short paragraphs, and keeps the worker
writing nowhere but its run directory; a run that is not trained (``base``) scores
exactly 0.

Metrics (all lower is better): ``probe_loss_before`` and ``probe_loss_after`` are
token-weighted mean NLL over the whole probe (as ``eval_loss``); ``forgetting`` is
their difference, after − before: positive when general ability was lost.
Per-example rows carry each paragraph's own difference of mean NLL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from ftsweep.evaluators.base import EvalExample, EvalScores, Evaluator
from ftsweep.evaluators.registry import register

Losses = Mapping[str, tuple[float, int]]  # example id -> (summed token NLL, tokens)


@register
class Forgetting(Evaluator):
    """probe_loss_before / probe_loss_after (mean token NLL) and forgetting = after − before."""

    name = "forgetting"
    needs_generation = False
    reads_probe: ClassVar[bool] = True
    aggregate = "weighted"  # token-weighted, as the loss evaluator
    metrics = {"probe_loss_before": False, "probe_loss_after": False, "forgetting": False}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="forgetting params")

        # A .jsonl file of {"id", "text"} records, relative to the experiment file.
        probe: str = Field(min_length=1)
        max_length: int = Field(128, ge=2, le=8192)  # tokens per paragraph; longer are cut
        max_examples: int | None = Field(None, ge=1)

    @classmethod
    def input_files(cls, params: Mapping[str, Any]) -> dict[str, str]:
        """The probe path: fingerprinted into the run id, so an edited probe is a new run."""
        probe = params.get("probe")
        return {"probe": probe} if isinstance(probe, str) and probe else {}

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        raise TypeError(
            "the forgetting evaluator scores probe losses, not generations: the worker "
            "computes them before and after training and calls Forgetting.from_probe()"
        )

    @classmethod
    def from_probe(cls, before: Losses, after: Losses) -> EvalScores:
        """Scores from the probe losses of the model before and after fine-tuning.

        Both must cover the same examples (the same probe, encoded once); a mismatch is
        a caller bug and raises ValueError.
        """
        if not before:
            raise ValueError("no probe losses to score")
        if set(before) != set(after):
            missing = sorted(set(before) ^ set(after))[:5]
            raise ValueError(f"probe losses before and after differ in examples: {missing}")
        rows: list[tuple[str, str, float]] = []
        totals = {"before": [0.0, 0], "after": [0.0, 0]}
        for example_id, (nll_b, n_b) in before.items():
            nll_a, n_a = after[example_id]
            if n_b <= 0 or n_a != n_b:
                raise ValueError(
                    f"probe example {example_id!r}: token counts must be equal and > 0, "
                    f"got {n_b} before and {n_a} after"
                )
            rows.append((example_id, "forgetting", nll_a / n_a - nll_b / n_b))
            totals["before"][0] += nll_b
            totals["before"][1] += n_b
            totals["after"][0] += nll_a
            totals["after"][1] += n_a
        loss_before = totals["before"][0] / totals["before"][1]
        loss_after = totals["after"][0] / totals["after"][1]
        return EvalScores(
            aggregate={
                "probe_loss_before": loss_before,
                "probe_loss_after": loss_after,
                "forgetting": loss_after - loss_before,
            },
            per_example=rows,
        )
