"""token_f1: SQuAD-style token-overlap F1, extended to text written without spaces.

SQuAD's official script lowercases, deletes punctuation, drops the articles a/an/the,
splits on whitespace and computes F1 over the multiset of shared tokens. Splitting on
whitespace makes a Chinese answer one giant token, so any difference scores 0; here
every CJK ideograph (and Japanese kana) is a token of its own, the usual
character-level F1 for Chinese (as in CMRC/DuReader). Punctuation is deleted as in
SQuAD ("don't" -> "dont"), extended from ASCII to all Unicode punctuation and symbols
so that "，" and "。" go too. On plain English the result equals SQuAD's.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
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

# CJK ideographs (unified, extension A, compatibility, extensions B and up) and kana.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_TOKEN = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_ARTICLES = frozenset({"a", "an", "the"})


def tokenize(text: str, *, lowercase: bool = True, remove_articles: bool = True) -> list[str]:
    """SQuAD normalisation, then whitespace tokens with each CJK character apart."""
    if lowercase:
        text = text.lower()
    # Unicode categories P* (punctuation) and S* (symbols) cover string.punctuation.
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PS")
    tokens = _TOKEN.findall(text)
    if remove_articles:
        tokens = [t for t in tokens if t.lower() not in _ARTICLES]
    return tokens


def f1(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """F1 of two token lists over their shared multiset of tokens."""
    if not prediction or not reference:
        # SQuAD's rule: an empty side scores 1 only when both are empty.
        return float(len(prediction) == len(reference))
    shared = sum((Counter(prediction) & Counter(reference)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(prediction)
    recall = shared / len(reference)
    return 2 * precision * recall / (precision + recall)


@register
class TokenF1(Evaluator):
    """Mean per-example token F1 (0..1)."""

    name = "token_f1"
    needs_generation = True
    metrics = {"token_f1": True}
    bounds = {"token_f1": (0.0, 1.0)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="token_f1 params")

        lowercase: bool = True
        # English-only rule from SQuAD; harmless on other languages.
        remove_articles: bool = True

    params: Params

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        check_examples(examples)
        options = {
            "lowercase": self.params.lowercase,
            "remove_articles": self.params.remove_articles,
        }
        values = [
            (e.example_id, f1(tokenize(e.prediction, **options), tokenize(e.reference, **options)))
            for e in examples
        ]
        return mean_scores("token_f1", values)
