"""win_rate: the tuned model's answer against its starting model's, by the task's checker.

Before the method changes the loaded weights, the worker generates the eval split's
answers with the model as loaded (worker/start_answers.py: the SFT parent for a stage,
the base model otherwise), with the eval's own decoding (greedy unless
``eval.generation`` samples). After training it hands both answer sets to
``score_against``. Each example is judged by the task's own checker — exact match (after
``eval.answer_extraction``) or pass@1 of the record's unit tests — and counts as a win
(tuned right, start wrong), a loss (the reverse) or a tie (both right or both wrong).
No external judge: the checker is the one the task is scored by.

win_rate = (wins + ties / 2) / n: 0.5 means no change, above 0.5 the tuned model fixed
more answers than it broke. Per-example rows carry 1 (win), 0.5 (tie) or 0 (loss), so
their mean is win_rate and paired statistics apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from ftsweep.evaluators.base import EvalExample, EvalScores, Evaluator, check_examples
from ftsweep.evaluators.exact_match import ExactMatch
from ftsweep.evaluators.isolation import Isolation
from ftsweep.evaluators.pass_at_1 import PassAt1
from ftsweep.evaluators.registry import register

Judge = Literal["auto", "exact_match", "pass_at_1"]


@register
class WinRate(Evaluator):
    """win_rate of tuned over starting answers, and the win / loss / tie counts."""

    name = "win_rate"
    needs_generation = True
    # The worker generates the starting model's answers before training for it.
    reads_start: ClassVar[bool] = True
    # Counts: more wins is better, more losses worse; ties are reported, not ranked
    # (declared higher-is-better only because every metric must declare a direction).
    metrics = {"win_rate": True, "wins": True, "losses": False, "ties": True}
    bounds = {
        "win_rate": (0.0, 1.0),
        "wins": (0.0, None),
        "losses": (0.0, None),
        "ties": (0.0, None),
    }

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="win_rate params")

        # auto: pass_at_1 where the records carry unit tests (code), else exact_match.
        judge: Judge = "auto"
        # pass_at_1 judging only: as the pass_at_1 evaluator's sandbox and time limit.
        sandbox: Isolation = "bwrap"
        timeout_s: float = Field(default=5.0, gt=0, le=600)

    params: Params

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        raise TypeError(
            "win_rate compares two answer sets: the worker generates the starting model's "
            "answers before training and calls WinRate.score_against(start, tuned)"
        )

    def judge_for(self, examples: Sequence[EvalExample]) -> Evaluator:
        """The checker that decides right and wrong for these examples."""
        judge = self.params.judge
        if judge == "auto":
            judge = "pass_at_1" if all(e.extra.get("tests") for e in examples) else "exact_match"
        if judge == "pass_at_1":
            return PassAt1(
                PassAt1.Params(sandbox=self.params.sandbox, timeout_s=self.params.timeout_s)
            )
        return ExactMatch()

    def score_against(
        self, start: Sequence[EvalExample], tuned: Sequence[EvalExample]
    ) -> EvalScores:
        """Judge ``tuned`` against ``start``: the same examples, in the same order."""
        check_examples(tuned)
        if [e.example_id for e in start] != [e.example_id for e in tuned]:
            raise ValueError("win_rate needs the starting and tuned answers of the same examples")
        checker = self.judge_for(tuned)
        before = [v for _, _, v in checker.score(start).per_example]
        after = [v for _, _, v in checker.score(tuned).per_example]
        rows, counts = [], {"wins": 0, "losses": 0, "ties": 0}
        for e, was, now in zip(tuned, before, after, strict=True):
            outcome = "wins" if now > was else "losses" if now < was else "ties"
            counts[outcome] += 1
            rows.append((e.example_id, "win_rate", {"wins": 1.0, "losses": 0.0}.get(outcome, 0.5)))
        n = len(tuned)
        aggregate = {"win_rate": (counts["wins"] + counts["ties"] / 2) / n}
        aggregate.update({k: float(v) for k, v in counts.items()})
        return EvalScores(aggregate=aggregate, per_example=rows)
