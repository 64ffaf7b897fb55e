"""DoRA through peft: LoRA with the weight split into magnitude and direction."""

from __future__ import annotations

from typing import Any, ClassVar

from ftsweep.methods import register
from ftsweep.methods.lora import Lora, LoraParams


class DoraParams(LoraParams):
    """Same knobs as LoRA; DoRA adds a trained magnitude vector per target layer."""


@register
class Dora(Lora):
    name = "dora"
    description = "DoRA (peft): LoRA plus a trained per-output magnitude (use_dora)"
    Params = DoraParams
    variant: ClassVar[dict[str, Any]] = {"use_dora": True}
