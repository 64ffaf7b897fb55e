"""AdaLoRA through peft: LoRA whose per-layer ranks are re-budgeted during training.

peft's rank allocator must run after every optimizer step, while the gradients still
exist (``update_and_allocate`` reads ``p.grad`` to score importance): the Trainer's
``on_optimizer_step`` event is exactly that moment (after ``optimizer.step()``, before
``model.zero_grad()``); ``on_step_end`` would be too late, the gradients are gone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams, ModelInfo
from ftsweep.methods.peft_common import PeftMethod, check_targets

# Only used to build the config before training when total_step is left to the Trainer;
# the callback replaces it with the real step count before the first step.
_PLACEHOLDER_TOTAL = 10**9


class AdaLoraParams(MethodParams):
    init_r: int = Field(12, gt=0, description="rank every target starts with")
    target_r: int = Field(8, gt=0, description="average rank left after pruning")
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"]
    )
    tinit: int = Field(0, ge=0, description="warm-up steps before any rank is pruned")
    tfinal: int = Field(0, ge=0, description="final steps trained with the ranks fixed")
    deltaT: int = Field(1, gt=0, description="steps between two budget re-allocations")
    # None: the Trainer's own step count (max_steps, or epochs x steps per epoch), so a
    # matrix over training.max_steps needs no second, matching value here.
    total_step: int | None = Field(None, gt=0)
    orth_reg_weight: float = Field(0.5, ge=0.0, description="weight of the orthogonality loss")


@register
class AdaLora(PeftMethod):
    name = "adalora"
    description = "AdaLoRA (peft): LoRA with ranks re-allocated by importance while training"
    Params = AdaLoraParams
    # peft's AdaLoRA forward adds an orthogonality penalty over every lora_A/lora_B of the
    # model; under fully_shard those are shards outside their layer's forward, and the
    # penalty fails on a shape mismatch (tried on 2 CPU processes, peft 0.21.2).
    cannot_shard = (
        "its orthogonality penalty and rank budget read every adapter matrix "
        "whole, while FSDP holds them only in shards"
    )
    export_as = "merged"

    def peft_config(self, params: Any) -> Any:
        from peft import AdaLoraConfig, TaskType

        return AdaLoraConfig(
            task_type=TaskType.CAUSAL_LM,
            init_r=params.init_r,
            target_r=params.target_r,
            lora_alpha=params.alpha,
            lora_dropout=params.dropout,
            target_modules=params.target_modules,
            tinit=params.tinit,
            tfinal=params.tfinal,
            deltaT=params.deltaT,
            total_step=params.total_step or _PLACEHOLDER_TOTAL,
            orth_reg_weight=params.orth_reg_weight,
        )

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        problems = self.check_peft(params) + check_targets(params.target_modules, info)
        if params.target_r > params.init_r:
            problems.append(
                (
                    "target_r",
                    f"must be <= init_r ({params.init_r}): AdaLoRA only "
                    "prunes ranks, it never grows them",
                )
            )
        return problems

    def callbacks(self, params: MethodParams, model: Any) -> list[Any]:
        from ftsweep.methods.adalora_budget import RankAllocation

        return [RankAllocation(model, fixed_total=getattr(params, "total_step", None))]
