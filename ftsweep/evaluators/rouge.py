"""rouge_l: ROUGE-L F-measure (longest common subsequence), through torchmetrics.

torchmetrics (Lightning AI, maintained, wheels, needs only torch which we have)
reimplements Google's ``rouge-score`` package, the reference most papers report,
whose last release (2022) ships as an sdist only. The default tokenisation is
rouge-score's: lowercase, every run of characters other than a-z and 0-9 becomes a
space. That deletes Chinese text entirely, so ``tokenizer: cjk`` uses token_f1's
rule instead (every CJK character a token, punctuation dropped). Porter stemming is
not offered: it needs nltk and changes scores only for English inflections.

Aggregation is the mean of the per-example F-measures, as rouge-score's
``BootstrapAggregator`` and torchmetrics report it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import ConfigDict

from ftsweep.evaluators.base import (
    EvalExample,
    EvalScores,
    Evaluator,
    check_examples,
    mean_scores,
)
from ftsweep.evaluators.registry import register
from ftsweep.evaluators.token_f1 import tokenize


def _cjk_tokens(text: str) -> list[str]:
    return tokenize(text, lowercase=True, remove_articles=False)


def rouge_l(prediction: str, reference: str, tokenizer: str = "words") -> float:
    """ROUGE-L F-measure of one prediction against one reference (0 when either is empty)."""
    from torchmetrics.functional.text.rouge import rouge_score

    options = {}
    if tokenizer == "cjk":
        options = {"normalizer": lambda s: s, "tokenizer": _cjk_tokens}
    scores = rouge_score(prediction, reference, rouge_keys="rougeL", **options)  # type: ignore[arg-type]
    return float(scores["rougeL_fmeasure"])


@register
class RougeL(Evaluator):
    """Mean per-example ROUGE-L F-measure (0..1)."""

    name = "rouge_l"
    needs_generation = True
    metrics = {"rouge_l": True}
    bounds = {"rouge_l": (0.0, 1.0)}
    aggregate = "mean"

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="rouge_l params")

        # words: rouge-score's rule (comparable with published English numbers);
        # cjk: each CJK character a token, for Chinese and Japanese text.
        tokenizer: Literal["words", "cjk"] = "words"

    params: Params

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        check_examples(examples)
        values = [
            (e.example_id, rouge_l(e.prediction, e.reference, self.params.tokenizer))
            for e in examples
        ]
        return mean_scores("rouge_l", values)
