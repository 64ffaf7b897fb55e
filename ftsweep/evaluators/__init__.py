"""Evaluators: plugins that turn eval items into metrics, registered by name.

Importing this package registers every built-in evaluator. To add one:

1. write ``ftsweep/evaluators/<name>.py`` with an ``Evaluator`` subclass declaring
   ``name``, ``needs_generation``, ``metrics`` (name -> higher is better), ``bounds``
   (name -> the range its values can take) and a ``Params`` model, decorated with
   ``@register``;
2. import the module below;
3. add it to the conformance cases in ``tests/test_evaluators.py``;
4. copy its metrics' direction, bounds and aggregate into ``ftsweep/report/registry_facts.py``
   (the report reads them there instead of importing this package and sacrebleu;
   ``tests/test_report_fast.py`` fails until the two agree).
"""

# Each built-in registers itself on import; plugins import ``registry`` directly, so
# the order of these imports does not matter.
from ftsweep.evaluators import (
    bleu,
    chrf,
    exact_match,
    forgetting,
    loss,
    pass_at_1,
    preference,
    reward,
    rouge,
    sampling,
    token_f1,
    win_rate,
)
from ftsweep.evaluators.base import (
    EvalExample,
    EvalScores,
    Evaluator,
    check_examples,
    mean_scores,
)
from ftsweep.evaluators.registry import (
    EVALUATORS,
    UnknownEvaluatorError,
    build_evaluator,
    corpus_evaluator,
    get_evaluator,
    metric_aggregate,
    metric_bounds,
    metric_direction,
    register,
)

__all__ = [
    "EVALUATORS",
    "EvalExample",
    "EvalScores",
    "Evaluator",
    "UnknownEvaluatorError",
    "bleu",
    "build_evaluator",
    "check_examples",
    "chrf",
    "corpus_evaluator",
    "exact_match",
    "forgetting",
    "get_evaluator",
    "loss",
    "mean_scores",
    "metric_aggregate",
    "metric_bounds",
    "metric_direction",
    "pass_at_1",
    "preference",
    "register",
    "reward",
    "rouge",
    "sampling",
    "token_f1",
    "win_rate",
]
