"""Full fine-tuning: every parameter trains."""

from __future__ import annotations

from typing import Any

from ftsweep.methods import register
from ftsweep.methods.base import Method, MethodParams


@register
class FullFineTuning(Method):
    name = "full"
    description = "full fine-tuning: all parameters train"
    Params = MethodParams

    def apply(self, model: Any, params: MethodParams) -> Any:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
