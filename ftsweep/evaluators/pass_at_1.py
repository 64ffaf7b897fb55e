"""pass_at_1: does the generated code pass the record's tests? (greedy pass@1)

Each example's record carries ``tests``: a list of Python statements, usually
asserts (MBPP style). The prediction runs first, then each test statement, in one
namespace, in a sandbox (``sandbox.py``; OS-level isolation by ``isolation.py``). An
example scores 1.0 iff every test reported its own success to the harness and the
interpreter exited 0 within the timeout, else 0.0: ending early scores 0. The
prediction runs as given: strip chat formatting or markdown fences when generating,
not here.

``sandbox: bwrap`` (the default) needs bubblewrap; where it cannot run, scoring
refuses with the reason. ``sandbox: none`` runs without OS isolation (resource limits
and the in-process hook only) and must be set explicitly; the scores then carry
``notes = {"sandbox": "none"}``, which the worker records in result.json
(``eval_notes``) for the report to mark.

With one greedy sample per problem, pass@1 is the fraction of problems solved; the
unbiased pass@k estimator for k samples is a different evaluator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pydantic import ConfigDict, Field

from ftsweep.evaluators.base import (
    EvalExample,
    EvalScores,
    Evaluator,
    check_examples,
    mean_scores,
)
from ftsweep.evaluators.isolation import Isolation, require
from ftsweep.evaluators.registry import register
from ftsweep.evaluators.sandbox import SandboxLimits, SandboxResult, run_python

_log = logging.getLogger(__name__)
_PYTHON_NAMES = frozenset({"python", "python3", "py"})


@register
class PassAt1(Evaluator):
    """Fraction of examples whose generated code passes its tests."""

    name = "pass_at_1"
    needs_generation = True
    scores_answers = False  # a program, never an extracted answer
    metrics = {"pass_at_1": True}
    bounds = {"pass_at_1": (0.0, 1.0)}

    class Params(Evaluator.Params):
        model_config = ConfigDict(title="pass_at_1 params")

        # Benchmark unit tests finish in well under a second; 5 s absorbs a loaded
        # machine without letting an infinite loop cost much.
        timeout_s: float = Field(default=5.0, gt=0, le=600)
        memory_mb: int = Field(default=512, ge=64, le=65536)
        # Programs mostly wait on interpreter start-up; two fit the 2-core dev boxes.
        workers: int = Field(default=2, ge=1, le=64)
        # bwrap: OS-level isolation (bubblewrap), refusing to run where it cannot.
        # none: no OS isolation, only limits and an in-process hook; scores are marked.
        sandbox: Isolation = "bwrap"

    params: Params

    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        check_examples(examples)
        _check_records(examples)
        isolation = self.params.sandbox
        require(isolation)  # SandboxUnavailableError, naming the fix, before any code runs
        limits = SandboxLimits(timeout_s=self.params.timeout_s, memory_mb=self.params.memory_mb)
        workers = min(self.params.workers, len(examples))

        def run(example: EvalExample) -> SandboxResult:
            return run_python(
                example.prediction, example.extra["tests"], limits, isolation=isolation
            )

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pass_at_1") as pool:
            results = list(pool.map(run, examples))
        for example, result in zip(examples, results, strict=True):
            _log_failure(example.example_id, result)
        scores = mean_scores(
            "pass_at_1",
            [(e.example_id, float(r.passed)) for e, r in zip(examples, results, strict=True)],
        )
        if isolation == "none":
            scores.notes["sandbox"] = "none"
        return scores


def _check_records(examples: Sequence[EvalExample]) -> None:
    """Raise one ValueError naming every record that cannot be tested.

    A record with no tests would otherwise "pass" trivially: that is a data bug to
    fix, not a score. All bad records are reported at once.
    """
    problems = []
    for e in examples:
        # "lang" in the shipped data is the natural language of the prompt (en/zh); the
        # programming language is "language", python when absent.
        lang = str(e.extra.get("language", "python")).lower()
        tests = e.extra.get("tests")
        if lang not in _PYTHON_NAMES:
            problems.append(f"{e.example_id!r}: language {lang!r} is not supported (python only)")
        elif isinstance(tests, str) or not tests:
            problems.append(f"{e.example_id!r}: extra['tests'] must be a non-empty list of str")
        elif not all(isinstance(test, str) for test in tests):
            problems.append(f"{e.example_id!r}: extra['tests'] holds a non-str item")
    if problems:
        raise ValueError("pass_at_1 cannot test these records:\n  " + "\n  ".join(problems))


def _log_failure(example_id: str, result: SandboxResult) -> None:
    # Debug level: failures are the common case for weak models; the tail is there
    # for whoever investigates one example.
    if not result.passed:
        reason = (
            "timed out"
            if result.timed_out
            else (
                f"exit code {result.returncode}, "
                f"{result.tests_passed} of {result.tests_total} tests reported"
            )
        )
        _log.debug("pass_at_1 %s failed (%s): %s", example_id, reason, result.stderr_tail[-500:])
