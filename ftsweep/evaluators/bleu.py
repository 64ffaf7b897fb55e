"""bleu: corpus BLEU (0..100) through sacrebleu, with sentence BLEU per example.

The corpus value is sacrebleu's ``corpus_score`` with one reference per example —
the number papers report — not the mean of sentence scores (``aggregate = "corpus"``).
Per-example values are sacrebleu sentence BLEU with effective order, to read; the
report's statistics resample sacrebleu's per-sentence statistics instead
(``example_stats`` / ``score_stats``), so they agree with the corpus value.

Tokenizers: "13a" (default, WMT's standard), "intl", "char", "zh" for Chinese.
"ja-mecab"/"ko-mecab" need extra packages, and the SentencePiece ones ("spm",
"flores101", "flores200", "spBLEU-1K") download a model the first time; both fail
when the evaluator is built, not mid-sweep.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Literal

from pydantic import ConfigDict, Field, field_validator
from sacrebleu.metrics import BLEU

from ftsweep.evaluators.base import EvalExample, EvalScores, Evaluator, check_examples
from ftsweep.evaluators.registry import register


def check_tokenizer(value: str, known: Sequence[str]) -> str:
    """Raise ValueError naming the valid tokenizers (and the closest) for a bad one."""
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown sacrebleu tokenizer {value!r}; {hint}valid: {', '.join(known)}")
    return value


@register
class Bleu(Evaluator):
    """Corpus BLEU against one reference per example."""

    name = "bleu"
    needs_generation = True
    aggregate = "corpus"  # the corpus score, not the mean of sentence scores
    metrics = {"bleu": True}
    bounds = {"bleu": (0.0, 100.0)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="bleu params")

        tokenize: str = "13a"
        lowercase: bool = False
        smooth_method: Literal["exp", "floor", "add-k", "none"] = "exp"
        # None means sacrebleu's default for the smoothing method.
        smooth_value: float | None = Field(default=None, ge=0)

        @field_validator("tokenize")
        @classmethod
        def _known_tokenizer(cls, value: str) -> str:
            return check_tokenizer(value, sorted(BLEU.TOKENIZERS))

    params: Params

    def __init__(self, params: Bleu.Params | None = None) -> None:
        super().__init__(params)
        options = self.params.model_dump()
        self._corpus = BLEU(**options)
        # Without effective order, one missing 4-gram zeroes a short sentence's score.
        self._sentence = BLEU(**options, effective_order=True)

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        check_examples(examples)
        predictions = [e.prediction for e in examples]
        references = [e.reference for e in examples]
        corpus = self._corpus.corpus_score(predictions, [references]).score
        per_example = [
            (e.example_id, "bleu", self._sentence.sentence_score(e.prediction, [e.reference]).score)
            for e in examples
        ]
        return EvalScores(aggregate={"bleu": corpus}, per_example=per_example)

    def example_stats(
        self, predictions: Sequence[str], references: Sequence[str]
    ) -> list[list[float]]:
        # sacrebleu's own per-sentence statistics: their sums give its corpus score
        rows = self._corpus._extract_corpus_statistics(list(predictions), [list(references)])
        return [[float(x) for x in row] for row in rows]

    def score_stats(self, totals: Sequence[float]) -> float:
        return float(self._corpus._compute_score_from_stats([int(round(x)) for x in totals]).score)
