"""rsLoRA through peft: LoRA scaled by alpha/sqrt(r), which stays stable at high ranks."""

from __future__ import annotations

from typing import Any, ClassVar

from ftsweep.methods import register
from ftsweep.methods.lora import Lora, LoraParams


class RsLoraParams(LoraParams):
    """Same knobs as LoRA; only the scaling rule differs (alpha/sqrt(r) instead of alpha/r)."""


@register
class RsLora(Lora):
    name = "rslora"
    description = "rank-stabilised LoRA (peft): update scaled alpha/sqrt(r) (use_rslora)"
    Params = RsLoraParams
    variant: ClassVar[dict[str, Any]] = {"use_rslora": True}
