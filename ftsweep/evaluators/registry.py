"""The evaluator registry: evaluator name -> class.

Each evaluator module registers itself with ``@register``; ``ftsweep.evaluators``
imports every built-in module, so importing the package fills the registry.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from ftsweep.evaluators.base import Evaluator

EVALUATORS: dict[str, type[Evaluator]] = {}


class UnknownEvaluatorError(KeyError):
    """An evaluator name that is not registered.

    A KeyError, so ``except KeyError`` callers keep working, with a readable message
    (KeyError's own ``str`` would show the message in quotes).
    """

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name = name
        self.valid = valid
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown evaluator {name!r}{hint} Valid evaluators: {', '.join(valid)}")

    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[Evaluator]) -> type[Evaluator]:
    """Class decorator: add an evaluator to EVALUATORS under ``cls.name``.

    Checks the declaration up front so a broken plugin fails at import, not in the
    middle of a sweep.
    """
    if not (inspect.isclass(cls) and issubclass(cls, Evaluator)):
        raise TypeError(f"@register needs an Evaluator subclass, got {cls!r}")
    if inspect.isabstract(cls):
        raise TypeError(f"{cls.__qualname__} is abstract; implement score()")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__qualname__}.name must be an identifier, got {name!r}")
    existing = EVALUATORS.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"evaluator name {name!r} is taken by {existing.__module__}.{existing.__qualname__}"
        )
    _check_metrics(cls)
    _check_bounds(cls)
    if not issubclass(cls.Params, Evaluator.Params):
        raise TypeError(f"{cls.__qualname__}.Params must subclass Evaluator.Params")
    EVALUATORS[name] = cls
    return cls


def _check_metrics(cls: type[Evaluator]) -> None:
    """Metric names must be unique in meaning: one name, one direction, everywhere."""
    metrics = getattr(cls, "metrics", None)
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"{cls.__qualname__}.metrics must be a non-empty dict")
    for metric, higher_is_better in metrics.items():
        if not isinstance(higher_is_better, bool):
            raise TypeError(f"{cls.__qualname__}.metrics[{metric!r}] must be a bool")
        known = metric_direction(metric)
        if known is not None and known != higher_is_better:
            raise ValueError(
                f"{cls.__qualname__} declares {metric!r} higher_is_better={higher_is_better}, "
                f"but another evaluator declares {known}"
            )


def _check_bounds(cls: type[Evaluator]) -> None:
    for metric, bound in cls.bounds.items():
        if metric not in cls.metrics:
            raise ValueError(f"{cls.__qualname__}.bounds names {metric!r}, not one of its metrics")
        low, high = bound
        if low is not None and high is not None and not low < high:
            raise ValueError(f"{cls.__qualname__}.bounds[{metric!r}] = {bound}: low must be < high")


def get_evaluator(name: str) -> type[Evaluator]:
    """The evaluator class registered as ``name``; UnknownEvaluatorError if none."""
    try:
        return EVALUATORS[name]
    except KeyError:
        raise UnknownEvaluatorError(name, sorted(EVALUATORS)) from None


def build_evaluator(name: str, params: Mapping[str, Any] | None = None) -> Evaluator:
    """Validate ``params`` against the evaluator's Params and build it.

    Raises UnknownEvaluatorError for an unknown name and pydantic's ValidationError
    (every problem at once, titled "<name> params") for bad parameters.
    """
    cls = get_evaluator(name)
    return cls(cls.Params.model_validate(dict(params or {})))


def metric_direction(metric: str) -> bool | None:
    """True if higher is better for ``metric``, False if lower is, None if unknown."""
    for cls in EVALUATORS.values():
        if metric in cls.metrics:
            return cls.metrics[metric]
    return None


def corpus_evaluator(
    metric: str, evaluator_params: Mapping[str, Mapping[str, Any]] | None = None
) -> Evaluator | None:
    """The evaluator owning ``metric``, if it aggregates by corpus, built with its params.

    ``evaluator_params`` is an experiment's ``eval.evaluator_params`` (name → params).

    None for a metric whose corpus value is the mean of its per-example rows (or an
    unknown metric): statistics may then average the per-example rows directly.
    """
    for cls in EVALUATORS.values():
        if metric in cls.metrics and cls.aggregate == "corpus":
            return build_evaluator(cls.name, (evaluator_params or {}).get(cls.name))
    return None


def metric_bounds(metric: str) -> tuple[float | None, float | None]:
    """The (lowest, highest) values ``metric`` can take; (None, None) if unbounded or unknown."""
    for cls in EVALUATORS.values():
        if metric in cls.metrics:
            return cls.bounds.get(metric, (None, None))
    return (None, None)


def metric_aggregate(metric: str) -> str | None:
    """How the evaluator owning ``metric`` aggregates (``Evaluator.aggregate``); None if unknown."""
    for cls in EVALUATORS.values():
        if metric in cls.metrics:
            return cls.aggregate
    return None
