"""Prompt tuning through peft: trained virtual-token embeddings prepended to the input.

The logits are then ``num_virtual_tokens`` longer than the labels; peft's
``PeftModelForCausalLM.forward`` pads the labels with -100 for the virtual positions, so
the Trainer's loss is right, and ``worker/evaluate.py`` keeps only the last
``labels.shape[1]`` logits for per-example losses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams, ModelInfo
from ftsweep.methods.peft_common import PeftMethod


class PromptParams(MethodParams):
    num_virtual_tokens: int = Field(20, gt=0, le=512)
    # "text" starts from the embeddings of init_text's tokens: steadier than random.
    init: Literal["random", "text"] = "random"
    init_text: str | None = Field(None, description="the text whose tokens seed the prompt")


@register
class PromptTuning(PeftMethod):
    name = "prompt"
    description = "prompt tuning (peft): trained virtual-token embeddings before the input"
    Params = PromptParams

    def peft_config(self, params: Any, tokenizer_path: str | None = None) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        text = params.init == "text"
        return PromptTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=params.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=params.init_text if text else None,
            # Checks only need a non-empty value; apply passes the model's own directory.
            tokenizer_name_or_path=(tokenizer_path or "<model path>") if text else None,
        )

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        if params.init == "text" and not params.init_text:
            return [("init_text", "init: text needs a non-empty init_text")]
        if params.init == "random" and params.init_text:
            return [("init_text", "is only used with init: text (init is 'random')")]
        return self.check_peft(params)

    def apply(self, model: Any, params: MethodParams) -> Any:
        from peft import get_peft_model

        # The worker loads model and tokenizer from the same directory, and
        # from_pretrained records it in name_or_path: the tokenizer is found there.
        path = getattr(model, "name_or_path", None) or model.config._name_or_path
        return get_peft_model(model, self.peft_config(params, tokenizer_path=path))
