"""sft: next-token loss on the answer (the prompt's tokens are masked), our own Trainer."""

from __future__ import annotations

from typing import Any

from ftsweep.objectives import register
from ftsweep.objectives.base import Objective, TrainContext


@register
class Sft(Objective):
    name = "sft"
    description = "supervised fine-tuning: next-token loss on the answer"
    families = ("instruction", "dialogue", "code")

    def build_trainer(self, ctx: TrainContext) -> Any:
        from ftsweep.worker.dataset import TokenDataset
        from ftsweep.worker.trainer import build_trainer

        groups = ctx.method.param_groups(ctx.method_params, ctx.model, ctx.cfg["training"]["lr"])
        return build_trainer(
            ctx.model,
            ctx.tok,
            ctx.cfg,
            ctx.run,
            TokenDataset(ctx.train_examples),
            ctx.eval_dataset,
            ctx.callbacks,
            groups,
        )
