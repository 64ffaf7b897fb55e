"""kto: Kahneman-Tversky Optimization on answers labelled desirable or not (TRL's KTOTrainer).

Reads unpaired records (``data.family: unpaired``: prompt, completion, label) or
preference pairs, each pair split into a desirable (chosen) and an undesirable
(rejected) answer. Like DPO it compares with a frozen reference: a copy of the loaded
weights for full and freeze, TRL's "ref" copy of the adapter for peft models (dropped
after training).
"""

from __future__ import annotations

from typing import Any

from ftsweep.objectives import register
from ftsweep.objectives.base import ConfigIssue, Objective, TrainContext
from ftsweep.objectives.dpo import PREFERENCE_REFUSED


@register
class Kto(Objective):
    name = "kto"
    description = "Kahneman-Tversky Optimization on desirable / undesirable answers (TRL)"
    families = ("unpaired", "preference")
    refused = PREFERENCE_REFUSED

    @classmethod
    def config_problems(cls, cfg: dict[str, Any]) -> list[ConfigIssue]:
        if cfg["training"]["batch_size"] < 2:
            return [
                ConfigIssue(
                    ("training", "batch_size"),
                    "KTO estimates its KL term from the other answers of the same batch, "
                    "so a batch needs at least 2 examples",
                    cfg["training"]["batch_size"],
                    "an integer >= 2",
                )
            ]
        return []

    def build_trainer(self, ctx: TrainContext) -> Any:
        from ftsweep.worker.preference import build_kto_trainer, unpaired_rows

        data = ctx.cfg["data"]
        return build_kto_trainer(
            ctx.model,
            ctx.tok,
            ctx.cfg,
            ctx.run,
            unpaired_rows(ctx.cfg, ctx.paths, "train", data["max_train_samples"], ctx.tok),
            unpaired_rows(ctx.cfg, ctx.paths, "eval", data["max_eval_samples"], ctx.tok)
            if ctx.evaluates
            else None,
            ctx.callbacks,
        )

    def finish(self, model: Any) -> None:
        from ftsweep.worker.preference import drop_reference_adapter

        drop_reference_adapter(model)
