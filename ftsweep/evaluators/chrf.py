"""chrf: corpus chrF (0..100) through sacrebleu, with sentence chrF per example.

Character n-grams need no word segmentation, which makes chrF a sound choice for
Chinese and other languages written without spaces. ``word_order: 2`` gives chrF++.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ConfigDict, Field
from sacrebleu.metrics import CHRF

from ftsweep.evaluators.base import EvalExample, EvalScores, Evaluator, check_examples
from ftsweep.evaluators.registry import register


@register
class Chrf(Evaluator):
    """Corpus chrF against one reference per example."""

    name = "chrf"
    needs_generation = True
    aggregate = "corpus"  # the corpus score, not the mean of sentence scores
    metrics = {"chrf": True}
    bounds = {"chrf": (0.0, 100.0)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="chrf params")

        # sacrebleu's defaults, i.e. the standard chrF2.
        char_order: int = Field(default=6, ge=1, le=12)
        word_order: int = Field(default=0, ge=0, le=4)
        beta: int = Field(default=2, ge=1)
        lowercase: bool = False
        whitespace: bool = False
        eps_smoothing: bool = False

    params: Params

    def __init__(self, params: Chrf.Params | None = None) -> None:
        super().__init__(params)
        self._metric = CHRF(**self.params.model_dump())

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        check_examples(examples)
        predictions = [e.prediction for e in examples]
        references = [e.reference for e in examples]
        corpus = self._metric.corpus_score(predictions, [references]).score
        per_example = [
            (e.example_id, "chrf", self._metric.sentence_score(e.prediction, [e.reference]).score)
            for e in examples
        ]
        return EvalScores(aggregate={"chrf": corpus}, per_example=per_example)

    def example_stats(
        self, predictions: Sequence[str], references: Sequence[str]
    ) -> list[list[float]]:
        # sacrebleu's own per-sentence statistics: their sums give its corpus score
        rows = self._metric._extract_corpus_statistics(list(predictions), [list(references)])
        return [[float(x) for x in row] for row in rows]

    def score_stats(self, totals: Sequence[float]) -> float:
        return float(self._metric._compute_score_from_stats([int(round(x)) for x in totals]).score)
