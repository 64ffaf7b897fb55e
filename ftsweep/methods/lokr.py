"""LoKr through peft: the update is a Kronecker product of a small and a low-rank factor."""

from __future__ import annotations

from typing import Any

from ftsweep.methods import register
from ftsweep.methods.loha import LohaParams
from ftsweep.methods.peft_common import PeftMethod


class LokrParams(LohaParams):
    """LoHa's parameters, plus how LoKr factorises each weight."""

    # Also factor the small Kronecker factor into low rank: fewer params, less capacity.
    decompose_both: bool = False
    # -1: peft picks the most balanced factorisation of each dimension.
    decompose_factor: int = -1


@register
class Lokr(PeftMethod):
    name = "lokr"
    description = "LoKr (peft): Kronecker-product low-rank updates"
    Params = LokrParams
    export_as = "merged"

    def peft_config(self, params: Any) -> Any:
        from peft import LoKrConfig, TaskType

        return LoKrConfig(
            task_type=TaskType.CAUSAL_LM,
            r=params.r,
            alpha=params.alpha,
            rank_dropout=params.rank_dropout,
            module_dropout=params.module_dropout,
            decompose_both=params.decompose_both,
            decompose_factor=params.decompose_factor,
            target_modules=params.target_modules,
        )
