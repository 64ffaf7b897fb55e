"""QLoRA: LoRA on a base model loaded in 4 or 8 bits with bitsandbytes. CUDA only.

``load_kwargs`` hands the worker a BitsAndBytesConfig for ``from_pretrained``; ``apply``
runs peft's ``prepare_model_for_kbit_training`` (fp32 norms, input grads for gradient
checkpointing, base frozen) and then adds LoRA. Saved artefacts are a plain LoRA adapter:
``ftsweep.export`` merges it into a full-precision copy of the base.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams, ModelInfo
from ftsweep.methods.lora import Lora, LoraParams

NO_GPU = "QLoRA needs a CUDA GPU with bitsandbytes; this machine has none: use lora, or run on a GPU machine"
NO_BNB = (
    "QLoRA needs the bitsandbytes package, which is not installed: "
    "pip install bitsandbytes on the GPU machine, or use lora"
)


class QloraParams(LoraParams):
    bits: Literal[4, 8] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"  # nf4: the QLoRA paper's data type (4-bit only)
    double_quant: bool = True  # quantise the quantisation constants too: ~0.4 bit/param saved
    compute_dtype: Literal["bf16", "fp16", "fp32"] = "bf16"  # the paper's; fp16 on pre-Ampere
    # Recomputes activations in backward: the memory saving is the point of QLoRA.
    gradient_checkpointing: bool = Field(True)


DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@register
class Qlora(Lora):
    name = "qlora"
    description = "QLoRA: LoRA on a 4/8-bit bitsandbytes-quantised base (CUDA GPU only)"
    Params = QloraParams
    # accelerate's fsdp2_prepare_model leaves non-float (uint8) 4-bit weights, as
    # load_kwargs stores them, out of fully_shard; 8-bit Int8Params under fully_shard were
    # not tried (no GPU when this was written). Refused rather than silently replicated.
    cannot_shard = (
        "FSDP2 does not shard its bitsandbytes-quantised base (each GPU would "
        "hold all of it); run QLoRA with one process per run, or shard lora"
    )

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        import torch

        problems = super().check(params, info)
        if not torch.cuda.is_available():
            problems.append(("", NO_GPU))
        elif importlib.util.find_spec("bitsandbytes") is None:
            problems.append(("", NO_BNB))
        return problems

    def load_kwargs(self, params: MethodParams) -> dict[str, Any]:
        import torch
        from transformers import BitsAndBytesConfig

        p: Any = params
        dtype = getattr(torch, DTYPES[p.compute_dtype])
        if p.bits == 8:
            return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=p.quant_type,
                bnb_4bit_use_double_quant=p.double_quant,
                bnb_4bit_compute_dtype=dtype,
            )
        }

    def apply(self, model: Any, params: MethodParams) -> Any:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=getattr(params, "gradient_checkpointing", True)
        )
        return super().apply(model, params)
