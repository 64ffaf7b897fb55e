"""dpo: Direct Preference Optimization on prompt/chosen/rejected pairs (TRL's DPOTrainer)."""

from __future__ import annotations

from typing import Any

from ftsweep.objectives import register
from ftsweep.objectives.base import Objective, TrainContext

# Methods whose virtual tokens or moving ranks TRL's preference trainers cannot follow;
# shared by the objectives that read pairs against a reference. The untrained baseline
# (base) is welcome under every objective: it evaluates the starting point on this
# experiment's data and evaluators (a stage's parent, scored on preference pairs).
PREFERENCE_REFUSED: dict[str, str] = {
    "prompt": "prompt tuning's virtual tokens add positions to the logits, which TRL's "
    "preference losses do not skip",
    "ptuning": "p-tuning's virtual tokens add positions to the logits, which TRL's "
    "preference losses do not skip",
    "prefix": "ftsweep does not yet run prefix tuning under a preference objective (TRL "
    "copies the adapter as its reference; not verified for prefix key/values)",
    "llama_adapter": "ftsweep does not yet run llama_adapter under a preference objective "
    "(adaption prompts are not verified with TRL's reference adapter)",
    "adalora": "AdaLoRA reallocates ranks during training, which TRL's frozen copy of the "
    "adapter (the reference) cannot follow",
    "progressive": "progressive unfreezing sets its own optimizer groups, which TRL's "
    "trainers do not take",
}


@register
class Dpo(Objective):
    name = "dpo"
    description = "Direct Preference Optimization on preference pairs (TRL)"
    families = ("preference",)
    refused = PREFERENCE_REFUSED

    def build_trainer(self, ctx: TrainContext) -> Any:
        from ftsweep.worker.preference import build_dpo_trainer, preference_rows

        limit = ctx.cfg["data"]
        return build_dpo_trainer(
            ctx.model,
            ctx.tok,
            ctx.cfg,
            ctx.run,
            preference_rows(ctx.cfg, ctx.paths, "train", limit["max_train_samples"], ctx.tok),
            preference_rows(ctx.cfg, ctx.paths, "eval", limit["max_eval_samples"], ctx.tok)
            if ctx.evaluates
            else None,
            ctx.callbacks,
        )

    def finish(self, model: Any) -> None:
        from ftsweep.worker.preference import drop_reference_adapter

        drop_reference_adapter(model)
