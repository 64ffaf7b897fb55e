"""P-tuning through peft: virtual tokens produced by a small trained MLP or LSTM encoder.

Like prompt tuning, the virtual tokens make the logits longer than the labels; peft pads
the labels for them (see ``prompt.py``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams
from ftsweep.methods.peft_common import PeftMethod


class PtuningParams(MethodParams):
    num_virtual_tokens: int = Field(20, gt=0, le=512)
    encoder: Literal["MLP", "LSTM"] = "MLP"  # the paper's two reparametrisations
    encoder_hidden_size: int = Field(128, gt=0)
    encoder_num_layers: int = Field(2, gt=0, le=8)
    encoder_dropout: float = Field(0.0, ge=0.0, lt=1.0)


@register
class PTuning(PeftMethod):
    name = "ptuning"
    description = "P-tuning (peft): virtual tokens from a trained MLP/LSTM prompt encoder"
    Params = PtuningParams

    def peft_config(self, params: Any) -> Any:
        from peft import PromptEncoderConfig, TaskType

        return PromptEncoderConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=params.num_virtual_tokens,
            encoder_reparameterization_type=params.encoder,
            encoder_hidden_size=params.encoder_hidden_size,
            encoder_num_layers=params.encoder_num_layers,
            encoder_dropout=params.encoder_dropout,
        )
