"""exact_match: 1.0 when the prediction equals the reference after normalisation."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ConfigDict

from ftsweep.evaluators.base import (
    EvalExample,
    EvalScores,
    Evaluator,
    check_examples,
    mean_scores,
)
from ftsweep.evaluators.registry import register

_WHITESPACE = re.compile(r"\s+")


@register
class ExactMatch(Evaluator):
    """Exact string match. Leading and trailing whitespace never counts."""

    name = "exact_match"
    needs_generation = True
    metrics = {"exact_match": True}
    bounds = {"exact_match": (0.0, 1.0)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="exact_match params")

        # Generations often differ from references only in line breaks or doubled
        # spaces, which no task means to penalise.
        normalize_whitespace: bool = True
        # Case is meaningful for code and identifiers, so it counts by default.
        case_sensitive: bool = True

    params: Params

    def normalize(self, text: str) -> str:
        text = text.strip()
        if self.params.normalize_whitespace:
            text = _WHITESPACE.sub(" ", text)
        if not self.params.case_sensitive:
            # casefold, not lower: "Straße" must match "STRASSE".
            text = text.casefold()
        return text

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        check_examples(examples)
        values = [
            (e.example_id, float(self.normalize(e.prediction) == self.normalize(e.reference)))
            for e in examples
        ]
        return mean_scores("exact_match", values)
