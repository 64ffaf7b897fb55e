"""reward: a reward model trained on preference pairs (TRL's RewardTrainer).

The model is the base with a one-output sequence-classification head (``head =
"score"``: the worker loads AutoModelForSequenceClassification(num_labels=1)); the
Bradley-Terry loss ``-log sigmoid(score(chosen) - score(rejected))`` teaches it to score
the chosen answer above the rejected one. It generates nothing and has no language-model
head, so it is evaluated by reward_accuracy only.
"""

from __future__ import annotations

from typing import Any

from ftsweep.objectives import register
from ftsweep.objectives.base import Objective, TrainContext

_PROMPT_LEARNING = (
    "{} adds virtual tokens before the sequence, and a reward model reads its score at "
    "the sequence's last token through peft's sequence-classification wrapper, which "
    "ftsweep has not verified with them"
)

REWARD_REFUSED: dict[str, str] = {
    "base": "the base method trains nothing, and the score head is new: its scores would be random",
    "prompt": _PROMPT_LEARNING.format("prompt tuning"),
    "ptuning": _PROMPT_LEARNING.format("p-tuning"),
    "prefix": _PROMPT_LEARNING.format("prefix tuning"),
    "llama_adapter": "llama_adapter's adaption prompts are built for causal language "
    "models only (peft has no sequence-classification variant)",
    "progressive": "progressive unfreezing sets its own optimizer groups, which TRL's "
    "trainers do not take",
    "adalora": "ftsweep does not yet run AdaLoRA on a reward model (its rank reallocation "
    "is not verified with the score head)",
    "qlora": "ftsweep does not yet load a 4-bit base under a score head (not verified)",
}


@register
class Reward(Objective):
    name = "reward"
    description = "reward model: a score head trained so chosen scores above rejected (TRL)"
    families = ("preference",)
    refused = REWARD_REFUSED
    head = "score"

    def prepare(self, model: Any) -> None:
        from ftsweep.worker.reward import train_score_head

        train_score_head(model)

    def build_trainer(self, ctx: TrainContext) -> Any:
        from ftsweep.worker.reward import build_reward_trainer, reward_rows

        data = ctx.cfg["data"]
        return build_reward_trainer(
            ctx.model,
            ctx.tok,
            ctx.cfg,
            ctx.run,
            reward_rows(ctx.cfg, ctx.paths, "train", data["max_train_samples"], ctx.tok),
            reward_rows(ctx.cfg, ctx.paths, "eval", data["max_eval_samples"], ctx.tok)
            if ctx.evaluates
            else None,
            ctx.callbacks,
        )
