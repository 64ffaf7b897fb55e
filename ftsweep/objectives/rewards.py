"""Verifiable rewards for grpo: the task's own checkers, scoring sampled completions.

Each reward is a callable in TRL's reward-function form, ``f(prompts, completions,
**columns) -> list[float]`` (one score per completion; the data set's other columns
arrive as lists beside them), named after the checker so TRL logs it as
``rewards/<name>/mean``.

- ``exact_match``: 1.0 when the completion's answer equals the reference's, with the
  eval's own rules: ``eval.answer_extraction`` applied to both (so "... #### 42" is
  compared as 42) and the exact_match evaluator's normalisation and params.
- ``pass_at_1``: the share of the record's unit tests the completion passes, each test
  run in the existing sandbox (evaluators/sandbox.py). A graded score gives GRPO a
  signal where a pass/fail one would give most groups equal rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ftsweep.evaluators import extract as extraction
from ftsweep.evaluators.exact_match import ExactMatch
from ftsweep.evaluators.isolation import Isolation, require
from ftsweep.evaluators.sandbox import SandboxLimits, run_python

RewardFn = Callable[..., list[float]]


def exact_match_reward(
    answer_extraction: str | dict | None, params: dict[str, Any] | None = None
) -> RewardFn:
    """The exact_match reward under the run's answer extraction and exact_match params."""
    extract = extraction.build(answer_extraction)
    checker = ExactMatch(ExactMatch.Params.model_validate(params or {}))

    def answer(text: str) -> str:
        return (extract(text) or "") if extract else text

    def exact_match(completions: Sequence[str], reference: Sequence[str], **_: Any) -> list[float]:
        out = []
        for completion, ref in zip(completions, reference, strict=True):
            wanted = extraction.reference_answer(extract, ref) if extract else ref
            out.append(float(checker.normalize(answer(completion)) == checker.normalize(wanted)))
        return out

    return exact_match


def pass_rate(
    program: str, tests: Sequence[str], limits: SandboxLimits, isolation: Isolation
) -> float:
    """The share of ``tests`` that ``program`` passes, each judged on its own.

    The sandbox stops at a program's first failing test, so the tests after it run again
    without it: at most one sandbox start per test, one when all pass. A time-out ends
    the count (the rest would most likely time out too, each costing the limit).
    """
    try:  # compiling runs nothing; a program that does not parse passes no test
        compile(program, "<completion>", "exec")
    except (SyntaxError, ValueError):
        return 0.0
    passed, rest = 0, list(tests)
    while rest:
        result = run_python(program, rest, limits, isolation=isolation)
        passed += result.tests_passed
        if result.passed or result.timed_out:
            break
        rest = rest[result.tests_passed + 1 :]  # skip the one that failed
    return passed / len(tests)


def pass_at_1_reward(
    isolation: Isolation, timeout_s: float, memory_mb: int = 512, workers: int = 2
) -> RewardFn:
    """The pass_at_1 reward: each completion's unit-test pass rate, sandboxed."""
    require(isolation)  # no bwrap here: refuse before training, naming the fix
    limits = SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb)

    def pass_at_1(
        completions: Sequence[str], tests: Sequence[Sequence[str]], **_: Any
    ) -> list[float]:
        jobs = list(zip(completions, tests, strict=True))
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
            return list(pool.map(lambda job: pass_rate(job[0], job[1], limits, isolation), jobs))

    return pass_at_1


def build_rewards(cfg: dict[str, Any]) -> list[RewardFn]:
    """One reward function per name in ``training.grpo.rewards``, in that order."""
    grpo = cfg["training"]["grpo"]
    ecfg = cfg["eval"]
    out: list[RewardFn] = []
    for name in grpo["rewards"]:
        if name == "exact_match":
            params = (ecfg.get("evaluator_params") or {}).get("exact_match")
            out.append(exact_match_reward(ecfg.get("answer_extraction"), params))
        elif name == "pass_at_1":
            out.append(pass_at_1_reward(grpo["sandbox"], grpo["timeout_s"]))
        else:  # the schema's Literal admits no other; a new one needs a branch here
            raise ValueError(f"unknown grpo reward {name!r}; valid: exact_match, pass_at_1")
    return out
