"""Which training objectives go with which data families and methods (issue 11).

``training.objective`` says *what* is optimised (sft, dpo); the method says *how* the
model is parameterised (full, LoRA, ...). Most pairs combine; the ones that cannot are
refused here, per resolved run config, with the reason — before anything trains.
"""

from __future__ import annotations

from typing import Any

from ftsweep.config.yamlpos import Path_, Positions
from ftsweep.errors import Problem

# The data family each objective reads; sft reads every family but preference pairs.
FAMILY_OF: dict[str, str] = {"dpo": "preference"}

# Methods the dpo objective refuses, and why. Everything else that trains combines with
# it: full and freeze train a copy of the weights against a frozen reference copy; the
# LoRA family trains an adapter against a frozen copy of it (TRL's "ref" adapter).
DPO_REFUSED: dict[str, str] = {
    "base": "the base method trains nothing, so there is no policy to optimise",
    "prompt": "prompt tuning's virtual tokens add positions to the logits, which TRL's "
    "DPO loss does not skip",
    "ptuning": "p-tuning's virtual tokens add positions to the logits, which TRL's DPO "
    "loss does not skip",
    "prefix": "ftsweep does not yet run prefix tuning under DPO (TRL copies the adapter "
    "as its reference; not verified for prefix key/values)",
    "llama_adapter": "ftsweep does not yet run llama_adapter under DPO (adaption prompts "
    "are not verified with TRL's reference adapter)",
    "adalora": "AdaLoRA reallocates ranks during training, which TRL's frozen copy of the "
    "adapter (the DPO reference) cannot follow",
    "progressive": "progressive unfreezing is not verified with TRL's DPO trainer yet",
}


def objective_problems(cfg: dict[str, Any], where: Path_, pos: Positions) -> list[Problem]:
    """Why the objective of a resolved run config cannot train it (empty when it can)."""
    objective = cfg["training"].get("objective", "sft")
    family = cfg["data"]["family"]
    method = cfg["method"]["name"]
    problems = []
    need = FAMILY_OF.get(objective)
    if need is not None and family != need:
        problems.append(
            pos.problem(
                _at(pos, ("data", "family"), where),
                f"training.objective {objective} learns from {need} pairs (prompt, chosen, "
                f"rejected); this is {family} data",
                value=family,
                has_value=True,
                valid=f"data.family: {need}, or training.objective: sft",
            )
        )
    if need is None and family == "preference":
        problems.append(
            pos.problem(
                _at(pos, ("training", "objective"), where),
                "preference pairs train a preference objective; sft would ignore the "
                "rejected answers",
                value=objective,
                has_value=True,
                valid="dpo",
            )
        )
    if "preference_accuracy" in cfg["eval"]["evaluators"] and family != "preference":
        problems.append(
            pos.problem(
                _at(pos, ("eval", "evaluators"), where),
                f"preference_accuracy compares chosen and rejected answers, which only "
                f"preference records have; this is {family} data",
                value="preference_accuracy",
                has_value=True,
                valid="data.family: preference",
            )
        )
    if objective == "dpo" and method in DPO_REFUSED:
        problems.append(
            pos.problem(
                where if where != ("matrix",) else ("matrix", "method"),
                f"method {method} cannot train with training.objective dpo: {DPO_REFUSED[method]}",
                value=method,
                has_value=True,
                valid="full, freeze, lora, rslora, dora, qlora, loha, lokr, vera, ia3",
            )
        )
    return problems


def _at(pos: Positions, key: Path_, where: Path_) -> Path_:
    """``key`` when the file sets it in its block, else the matrix entry that set it."""
    set_in_block = pos.line(key) != pos.line(key[:-1])
    return key if set_in_block or where == ("matrix",) else where
