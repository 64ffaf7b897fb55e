"""Prefix tuning through peft: trained key/value prefixes at every layer, base frozen."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams
from ftsweep.methods.peft_common import PeftMethod


class PrefixParams(MethodParams):
    num_virtual_tokens: int = Field(20, gt=0, le=512)
    # The reparametrisation MLP of the original paper; steadier training, more params.
    prefix_projection: bool = False
    encoder_hidden_size: int | None = Field(None, gt=0)


@register
class PrefixTuning(PeftMethod):
    name = "prefix"
    description = "prefix tuning (peft): trained per-layer key/value prefixes"
    Params = PrefixParams

    def peft_config(self, params: Any) -> Any:
        from peft import PrefixTuningConfig, TaskType

        kw: dict[str, Any] = {}
        if params.encoder_hidden_size is not None:
            kw["encoder_hidden_size"] = params.encoder_hidden_size
        return PrefixTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=params.num_virtual_tokens,
            prefix_projection=params.prefix_projection,
            **kw,
        )
