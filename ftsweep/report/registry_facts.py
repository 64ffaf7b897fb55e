"""What the report asks the evaluator and method registries, answered without importing them.

The report needs four facts about a metric — which evaluator owns it, whether higher is
better, the range its values can take, how it aggregates — and one about a method: does
it train anything. Asking the registries means importing every built-in evaluator and
method (pydantic models, sacrebleu, the sandbox): about 0.5 s of a 1,000-run report's
3 s budget, for a handful of constants.

So the built-ins' facts are written out below, and ``tests/test_report_fast.py`` checks
them against the registries (add an evaluator or method there and that test says what to
write here). The registries stay the authority: when ``ftsweep.evaluators`` or
``ftsweep.methods`` is already imported in this process (a worker, a test, a plugin that
registered itself), they are asked first (their ``metric_direction``, ``metric_bounds``,
``metric_aggregate``, ``METHODS``), so a plugin's metric is still known; a report
process that never imported them reads this table.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

Bound = tuple[float | None, float | None]
_UNBOUNDED: Bound = (None, None)


@dataclass(frozen=True)
class MetricFacts:
    evaluator: str  # the registered evaluator that declares the metric
    higher_is_better: bool
    bounds: Bound  # (lowest, highest); None: unbounded on that side
    aggregate: str  # Evaluator.aggregate: "mean", "weighted" or "corpus"


def _facts() -> dict[str, MetricFacts]:
    unit = (0.0, 1.0)
    table = {
        "bleu": MetricFacts("bleu", True, (0.0, 100.0), "corpus"),
        "chrf": MetricFacts("chrf", True, (0.0, 100.0), "corpus"),
        "exact_match": MetricFacts("exact_match", True, unit, "mean"),
        "probe_loss_before": MetricFacts("forgetting", False, _UNBOUNDED, "weighted"),
        "probe_loss_after": MetricFacts("forgetting", False, _UNBOUNDED, "weighted"),
        "forgetting": MetricFacts("forgetting", False, _UNBOUNDED, "weighted"),
        "eval_loss": MetricFacts("loss", False, (0.0, None), "weighted"),
        "perplexity": MetricFacts("loss", False, (1.0, None), "weighted"),
        "majority_vote": MetricFacts("majority_vote", True, unit, "mean"),
        "pass_at_1": MetricFacts("pass_at_1", True, unit, "mean"),
        "preference_accuracy": MetricFacts("preference_accuracy", True, unit, "mean"),
        "preference_margin": MetricFacts("preference_accuracy", True, _UNBOUNDED, "mean"),
        "reward_accuracy": MetricFacts("reward_accuracy", True, unit, "mean"),
        "reward_margin": MetricFacts("reward_accuracy", True, _UNBOUNDED, "mean"),
        "rouge_l": MetricFacts("rouge_l", True, unit, "mean"),
        "win_rate": MetricFacts("win_rate", True, unit, "mean"),
        "wins": MetricFacts("win_rate", True, (0.0, None), "mean"),
        "losses": MetricFacts("win_rate", False, (0.0, None), "mean"),
        "ties": MetricFacts("win_rate", True, (0.0, None), "mean"),
        "token_f1": MetricFacts("token_f1", True, unit, "mean"),
    }
    # pass_at_k declares pass@1 .. pass@MAX_SAMPLES (evaluators/sampling.py)
    table.update({f"pass@{k}": MetricFacts("pass_at_k", True, unit, "mean") for k in range(1, 65)})
    return table


BUILTIN_METRICS: dict[str, MetricFacts] = _facts()
# built-in methods with ``trains = False`` (they only evaluate the base model)
BUILTIN_FIXED_METHODS: frozenset[str] = frozenset({"base"})


def _ask_registry(function: str, metric: str) -> Any:
    """``ftsweep.evaluators.<function>(metric)`` if this process has imported the
    evaluators (None otherwise, or where it has no such function)."""
    ask = getattr(sys.modules.get("ftsweep.evaluators"), function, None)
    return ask(metric) if ask is not None else None


def metric_direction(metric: str) -> bool | None:
    """True if higher is better for ``metric``, False if lower is, None if no evaluator
    declares it (a cost, a logged value)."""
    answer = _ask_registry("metric_direction", metric)
    if answer is not None:
        return bool(answer)
    facts = BUILTIN_METRICS.get(metric)
    return None if facts is None else facts.higher_is_better


def metric_bounds(metric: str) -> Bound:
    """The (lowest, highest) values ``metric`` can take; (None, None) if unbounded or unknown."""
    answer = _ask_registry("metric_bounds", metric)
    if answer is not None and tuple(answer) != _UNBOUNDED:
        return (answer[0], answer[1])
    facts = BUILTIN_METRICS.get(metric)
    return _UNBOUNDED if facts is None else facts.bounds


def metric_aggregate(metric: str) -> str | None:
    """How the evaluator owning ``metric`` aggregates ("mean", "weighted", "corpus"); None
    if no evaluator declares it."""
    answer = _ask_registry("metric_aggregate", metric)
    if answer is not None:
        return str(answer)
    facts = BUILTIN_METRICS.get(metric)
    return None if facts is None else facts.aggregate


def trains_nothing(method: str | None) -> bool:
    """True for a method that only evaluates (``Method.trains = False``); False if unknown."""
    methods = sys.modules.get("ftsweep.methods")
    cls = getattr(methods, "METHODS", {}).get(method or "") if methods is not None else None
    if cls is not None:
        return not getattr(cls, "trains", True)
    return (method or "") in BUILTIN_FIXED_METHODS
