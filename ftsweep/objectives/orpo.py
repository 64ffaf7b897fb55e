"""orpo: Odds Ratio Preference Optimization on preference pairs (TRL's ORPOTrainer).

The chosen answers' next-token loss plus ``beta`` times a log-odds-ratio penalty that
pushes the rejected answer's odds below the chosen one's. No reference model: ORPO
needs no SFT stage before it and holds one model in memory, not two.
"""

from __future__ import annotations

from typing import Any

from ftsweep.objectives import register
from ftsweep.objectives.base import Objective, TrainContext
from ftsweep.objectives.dpo import PREFERENCE_REFUSED

# Without a reference there is no frozen adapter copy to go stale; what stays refused
# is what TRL's preference losses cannot read (virtual tokens), what trains nothing, and
# what ftsweep has not verified under this trainer.
ORPO_REFUSED = {
    **PREFERENCE_REFUSED,
    "prefix": "ftsweep does not yet run prefix tuning under ORPO (prefix key/values are "
    "not verified with TRL's ORPO trainer)",
    "adalora": "ftsweep does not yet run AdaLoRA under ORPO (its rank reallocation is not "
    "verified with TRL's ORPO trainer)",
}


@register
class Orpo(Objective):
    name = "orpo"
    description = "Odds Ratio Preference Optimization on preference pairs, no reference (TRL)"
    families = ("preference",)
    refused = ORPO_REFUSED

    def build_trainer(self, ctx: TrainContext) -> Any:
        from ftsweep.worker.preference import build_orpo_trainer, preference_rows

        data = ctx.cfg["data"]
        return build_orpo_trainer(
            ctx.model,
            ctx.tok,
            ctx.cfg,
            ctx.run,
            preference_rows(ctx.cfg, ctx.paths, "train", data["max_train_samples"], ctx.tok),
            preference_rows(ctx.cfg, ctx.paths, "eval", data["max_eval_samples"], ctx.tok)
            if ctx.evaluates
            else None,
            ctx.callbacks,
        )
