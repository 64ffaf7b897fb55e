"""LoRA through peft: low-rank updates on chosen linear layers.

``dora`` and ``rslora`` (their own modules) reuse these params and this config builder,
each switching on one peft flag, so a matrix names them as methods of their own.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams
from ftsweep.methods.peft_common import PeftMethod


class LoraParams(MethodParams):
    r: int = Field(8, gt=0, description="rank of the update")
    alpha: float = Field(16, gt=0, description="scaling numerator: the update is scaled alpha/r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # Attention projections are peft's classic default; "all-linear" adds the MLP too.
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"]
    )
    bias: Literal["none", "all", "lora_only"] = "none"


@register
class Lora(PeftMethod):
    name = "lora"
    description = "LoRA (peft): low-rank adapters on chosen linear layers"
    Params: ClassVar[type[MethodParams]] = LoraParams
    export_as = "merged"
    # peft LoraConfig flags that distinguish a variant (dora: use_dora, rslora: use_rslora).
    variant: ClassVar[dict[str, Any]] = {}

    def peft_config(self, params: Any) -> Any:
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=params.r,
            lora_alpha=params.alpha,
            lora_dropout=params.dropout,
            target_modules=params.target_modules,
            bias=params.bias,
            **self.variant,
        )
