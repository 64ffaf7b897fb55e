"""LoHa through peft: the update is a Hadamard product of two low-rank products."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams
from ftsweep.methods.peft_common import PeftMethod


class LohaParams(MethodParams):
    r: int = Field(8, gt=0)
    alpha: float = Field(8, gt=0, description="scaling numerator: the update is scaled alpha/r")
    rank_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    module_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"]
    )


@register
class Loha(PeftMethod):
    name = "loha"
    description = "LoHa (peft): Hadamard product of two low-rank updates"
    Params = LohaParams
    export_as = "merged"

    def peft_config(self, params: Any) -> Any:
        from peft import LoHaConfig, TaskType

        return LoHaConfig(
            task_type=TaskType.CAUSAL_LM,
            r=params.r,
            alpha=params.alpha,
            rank_dropout=params.rank_dropout,
            module_dropout=params.module_dropout,
            target_modules=params.target_modules,
        )
