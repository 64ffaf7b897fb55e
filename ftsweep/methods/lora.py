"""LoRA through peft: low-rank updates on chosen linear layers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ftsweep.errors import did_you_mean
from ftsweep.methods import register
from ftsweep.methods.base import MethodParams, ModelInfo
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
    Params = LoraParams

    def peft_config(self, params: Any) -> Any:
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=params.r,
            lora_alpha=params.alpha,
            lora_dropout=params.dropout,
            target_modules=params.target_modules,
            bias=params.bias,
        )

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        problems = self.check_peft(params)
        if params.target_modules != "all-linear" and info.linear_module_names:
            valid = sorted(info.linear_module_names)
            for name in params.target_modules:
                if name not in info.linear_module_names:
                    problems.append((
                        "target_modules",
                        f"no linear module named {name!r} in this {info.model_type} model"
                        f"{did_you_mean(name, valid)}; valid: {', '.join(valid)} or 'all-linear'",
                    ))
        return problems
