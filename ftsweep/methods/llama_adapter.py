"""LLaMA-Adapter through peft (AdaptionPromptConfig): gated prompts in the top layers."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams, ModelInfo
from ftsweep.methods.peft_common import PeftMethod

# peft's adaption prompt knows these architectures (adaption_prompt/config.py).
SUPPORTED = ("llama", "mistral", "gpt2")


class LlamaAdapterParams(MethodParams):
    adapter_len: int = Field(10, gt=0, le=512, description="adaption tokens per layer")
    # The paper adapts the top 30 of 32 layers; 2 suits the tiny test model, raise it.
    adapter_layers: int = Field(2, gt=0, description="number of top layers adapted")


@register
class LlamaAdapter(PeftMethod):
    name = "llama_adapter"
    description = "LLaMA-Adapter (peft adaption prompt): zero-gated prompts in top layers"
    Params = LlamaAdapterParams

    def peft_config(self, params: Any) -> Any:
        from peft import AdaptionPromptConfig, TaskType

        return AdaptionPromptConfig(
            task_type=TaskType.CAUSAL_LM,
            adapter_len=params.adapter_len,
            adapter_layers=params.adapter_layers,
        )

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        problems = self.check_peft(params)
        if info.model_type not in SUPPORTED:
            problems.append(
                (
                    "",
                    f"peft's adaption prompt supports {', '.join(SUPPORTED)} "
                    f"models, not {info.model_type!r}",
                )
            )
        if info.num_layers and params.adapter_layers > info.num_layers:
            problems.append(("adapter_layers", f"the model has only {info.num_layers} layers"))
        return problems
