"""The untrained base model: evaluates only, so every report shows what fine-tuning bought."""

from __future__ import annotations

from typing import Any

from ftsweep.methods import register
from ftsweep.methods.base import Method, MethodParams


@register
class BaseModelMethod(Method):
    name = "base"
    description = "no training: evaluate the base model as a baseline"
    Params = MethodParams
    trains = False

    def apply(self, model: Any, params: MethodParams) -> Any:
        for p in model.parameters():
            p.requires_grad_(False)
        return model
