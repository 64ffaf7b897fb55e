"""Shared glue for methods that are a peft config: build it, check it, apply it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from ftsweep.errors import did_you_mean
from ftsweep.methods.base import ExportAs, Method, MethodParams, ModelInfo


class PeftMethod(Method):
    """A method defined by a peft config; subclasses implement ``peft_config``.

    By default the result cannot be folded into plain weights (``export_as="adapter"``);
    the LoRA family and the other weight-delta methods set ``export_as="merged"``.
    """

    saves_adapter = True
    export_as: ClassVar[ExportAs] = "adapter"

    def peft_config(self, params: MethodParams) -> Any:  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must define peft_config()")

    def check_peft(self, params: MethodParams) -> list[tuple[str, str]]:
        """Build the peft config so peft's own checks run before any training."""
        try:
            self.peft_config(params)
        except (TypeError, ValueError) as exc:
            return [("", f"peft rejects these parameters: {exc}")]
        return []

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        problems = self.check_peft(params)
        if hasattr(params, "target_modules"):
            problems += check_targets(params.target_modules, info)
        return problems

    def apply(self, model: Any, params: MethodParams) -> Any:
        from peft import TaskType, get_peft_model

        config = self.peft_config(params)
        if type(model).__name__.endswith("ForSequenceClassification"):
            # A reward model (objectives/reward.py): peft's SEQ_CLS task also trains and
            # saves the new score head (modules_to_save), which the adapter alone would not.
            config.task_type = TaskType.SEQ_CLS
        return get_peft_model(model, config)


def check_targets(
    targets: list[str] | Literal["all-linear"], info: ModelInfo, field: str = "target_modules"
) -> list[tuple[str, str]]:
    """Every target name that is not a linear module of this model, with a suggestion.

    Skipped when the model's linear names are unknown (a hub model checked in the worker).
    """
    if targets == "all-linear" or not info.linear_module_names:
        return []
    if not targets:
        return [(field, "is empty: name at least one linear module, or use 'all-linear'")]
    valid = sorted(info.linear_module_names)
    return [
        (
            field,
            f"no linear module named {name!r} in this {info.model_type} model"
            f"{did_you_mean(name, valid)}; valid: {', '.join(valid)} or 'all-linear'",
        )
        for name in targets
        if name not in info.linear_module_names
    ]
