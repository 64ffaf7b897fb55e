"""Training objectives, one module each, registered by name (``training.objective``).

Adding an objective: write ``objectives/<name>.py`` with an ``Objective`` subclass
decorated with ``@register``, its parameters in ``config/objective_params.py`` (a block
``training.<name>`` in TrainingBlock), and import the module at the bottom of this file.
Validation (config/objective.py) and the worker read everything else from the class.
"""

from __future__ import annotations

from ftsweep.errors import FtsweepError, did_you_mean
from ftsweep.objectives.base import Objective, TrainContext

OBJECTIVES: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    if cls.name in OBJECTIVES:
        raise ValueError(f"objective {cls.name!r} registered twice")
    OBJECTIVES[cls.name] = cls
    return cls


class UnknownObjectiveError(FtsweepError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_objective(name: str) -> type[Objective]:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise UnknownObjectiveError(
            f"unknown objective {name!r}{did_you_mean(name, OBJECTIVES)}; "
            f"valid: {', '.join(sorted(OBJECTIVES))}"
        ) from None


def objectives_for(family: str) -> list[str]:
    """The objectives that learn from ``family`` data, in registry order."""
    return [name for name, cls in OBJECTIVES.items() if family in cls.families]


__all__ = ["OBJECTIVES", "Objective", "TrainContext", "get_objective", "objectives_for", "register"]

# Built-in objectives register themselves on import.
from ftsweep.objectives import dpo, grpo, kto, orpo, reward, sft  # noqa: E402,F401
