"""Which training objectives go with which data families and methods (issue 11).

``training.objective`` says *what* is optimised (sft, dpo, ...); the method says *how* the
model is parameterised (full, LoRA, ...). Most pairs combine; the ones that cannot are
refused here, per resolved run config, with the reason — before anything trains.
"""

from __future__ import annotations

from typing import Any

from ftsweep.config.yamlpos import Path_, Positions
from ftsweep.errors import Problem
from ftsweep.objectives import get_objective, objectives_for

# What each data family holds, for the messages.
SHAPE = {
    "preference": "preference pairs (prompt, chosen, rejected)",
    "unpaired": "answers labelled desirable or not (prompt, completion, label)",
}


def objective_problems(cfg: dict[str, Any], where: Path_, pos: Positions) -> list[Problem]:
    """Why the objective of a resolved run config cannot train it (empty when it can).

    Everything is read from the objective's plugin (ftsweep/objectives): the data
    families it learns from and the methods it refuses, with the reason.
    """
    name = cfg["training"].get("objective", "sft")
    objective = get_objective(name)
    family = cfg["data"]["family"]
    method = cfg["method"]["name"]
    problems = []
    if family not in objective.families:
        takes = " or ".join(SHAPE.get(f, f"{f} records") for f in objective.families)
        problems.append(
            pos.problem(
                _at(pos, ("data", "family"), where),
                f"training.objective {name} learns from {takes}; this is {family} data"
                + ("; sft would ignore the rejected answers" if family == "preference" else ""),
                value=family,
                has_value=True,
                valid=f"data.family: {' / '.join(objective.families)}, or training.objective: "
                f"{' / '.join(objectives_for(family)) or 'none takes this family'}",
            )
        )
    for evaluator, why, valid in _evaluator_problems(cfg, objective):
        problems.append(
            pos.problem(
                _at(pos, ("eval", "evaluators"), where),
                why,
                value=evaluator,
                has_value=True,
                valid=valid,
            )
        )
    if method in objective.refused:
        from ftsweep.methods import METHODS

        problems.append(
            pos.problem(
                where if where != ("matrix",) else ("matrix", "method"),
                f"method {method} cannot train with training.objective {name}: "
                f"{objective.refused[method]}",
                value=method,
                has_value=True,
                valid=", ".join(m for m in METHODS if m not in objective.refused),
            )
        )
    for issue in objective.config_problems(cfg):
        problems.append(
            pos.problem(
                _at(pos, issue.key, where),
                issue.message,
                value=issue.value,
                has_value=True,
                valid=issue.valid,
            )
        )
    return problems


def _evaluator_problems(cfg: dict[str, Any], objective: Any) -> list[tuple[str, str, str]]:
    """(evaluator, why, what would be valid) for each evaluator the run cannot score.

    Read from the evaluator (``reads_pairs``: the pair margin it scores) and the
    objective (``head``): a reward model has a score head and no language-model head,
    so it is scored by its margins only, and score margins need a reward model.
    """
    from ftsweep.evaluators import EVALUATORS

    family, out = cfg["data"]["family"], []
    for name in cfg["eval"]["evaluators"]:
        cls = EVALUATORS.get(name)
        if cls is None:
            continue  # unknown names are reported by the evaluator checks
        reads = getattr(cls, "reads_pairs", None)
        if reads and family != "preference":
            out.append(
                (
                    name,
                    f"{name} compares chosen and rejected answers, which only preference "
                    f"records have; this is {family} data",
                    "data.family: preference",
                )
            )
        elif objective.head == "score" and reads != "score":
            needs = "generated text" if cls.needs_generation else "a language model's loss"
            out.append(
                (
                    name,
                    f"{name} needs {needs}, and training.objective {objective.name} trains a "
                    "reward model (a score head, no language-model head)",
                    ", ".join(
                        n for n, c in EVALUATORS.items() if getattr(c, "reads_pairs", 0) == "score"
                    ),
                )
            )
        elif objective.head != "score" and reads == "score":
            out.append(
                (
                    name,
                    f"{name} reads a reward model's scores; training.objective "
                    f"{objective.name} trains a language model",
                    "training.objective: reward, or preference_accuracy",
                )
            )
    return out


def _get(cfg: dict[str, Any], key: Path_) -> Any:
    value: Any = cfg
    for part in key:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _at(pos: Positions, key: Path_, where: Path_) -> Path_:
    """``key`` when the file sets it in its block, else the matrix entry that set it."""
    return key if pos.sets(key) or where == ("matrix",) else where
