"""grpo: Group Relative Policy Optimization with verifiable rewards (TRL's GRPOTrainer).

For each prompt of the train split the policy samples ``training.grpo.group_size``
completions; the task's own checker scores each (objectives/rewards.py: exact match
after the eval's answer extraction, or the sandboxed unit-test pass rate of code), and
each completion is pushed up or down by its reward against its group's mean. No reward
model is trained.

Prompts are the run's rendering of each record (worker/dataset.py, as sft trains and the
final eval generates), so a policy started from an SFT run sees the format it learned.
The KL term (``kl_coef`` > 0) is taken against the starting model: TRL loads a frozen
copy of it from the model path for full and freeze; for a peft model TRL copies the
fresh adapter as a frozen "ref" adapter (which equals the base model, the adapter's
update starting at zero), dropped in ``finish`` so the artefact is the trained adapter.
"""

from __future__ import annotations

from typing import Any

from ftsweep.objectives import register
from ftsweep.objectives.base import ConfigIssue, Objective, TrainContext

VIRTUAL_TOKENS = (
    "its virtual tokens are lost when TRL samples with generate() (peft 0.21 drops "
    "them from the cache; the eval decodes such models without one)"
)


def _divisors(n: int) -> list[int]:
    return [d for d in range(2, n + 1) if n % d == 0]


@register
class Grpo(Objective):
    name = "grpo"
    description = "GRPO: sampled answers rewarded by the task's checker (TRL)"
    families = ("instruction", "code")
    refused = {
        "prompt": f"prompt tuning: {VIRTUAL_TOKENS}",
        "ptuning": f"p-tuning: {VIRTUAL_TOKENS}",
        "prefix": f"prefix tuning: {VIRTUAL_TOKENS}",
        "llama_adapter": "ftsweep does not yet run llama_adapter under grpo (its adaption "
        "prompts are not verified with TRL's sampling and reference adapter)",
        "adalora": "AdaLoRA reallocates ranks during training, which TRL's frozen copy of "
        "the adapter (the KL reference) cannot follow",
        "progressive": "progressive unfreezing sets its own optimizer groups, which TRL's "
        "trainers do not take",
    }

    @classmethod
    def config_problems(cls, cfg: dict[str, Any]) -> list[ConfigIssue]:
        t, family = cfg["training"], cfg["data"]["family"]
        grpo = t["grpo"]
        issues = []
        rewards = grpo["rewards"]
        at_rewards = ("training", "grpo", "rewards")
        if "pass_at_1" in rewards and family != "code":
            issues.append(
                ConfigIssue(
                    at_rewards,
                    f"the pass_at_1 reward runs each record's unit tests; {family} records "
                    "have none",
                    rewards,
                    "rewards: [exact_match], or data.family: code",
                )
            )
        if "exact_match" in rewards and family == "code":
            issues.append(
                ConfigIssue(
                    at_rewards,
                    "the exact_match reward on code would pay for copying the reference "
                    "solution's text, not for a program that works",
                    rewards,
                    "rewards: [pass_at_1]",
                )
            )
        # TRL samples one generation batch of batch_size x grad_accum x processes
        # completions, which must hold whole groups (GRPOConfig's own rule).
        completions = t["batch_size"] * t["grad_accum"] * int(cfg.get("num_processes", 1))
        if completions % grpo["group_size"]:
            issues.append(
                ConfigIssue(
                    ("training", "grpo", "group_size"),
                    f"TRL samples {completions} completions per step (training.batch_size "
                    f"{t['batch_size']} x grad_accum {t['grad_accum']} x num_processes "
                    f"{cfg.get('num_processes', 1)}), which must be whole groups of "
                    f"group_size completions",
                    grpo["group_size"],
                    f"group_size in {_divisors(completions) or '[none: raise batch_size]'}, "
                    f"or a batch_size that is a multiple of {grpo['group_size']}",
                )
            )
        if cfg["data"].get("packing"):
            issues.append(
                ConfigIssue(
                    ("data", "packing"),
                    "grpo samples answers to each prompt; packed examples have no prompt",
                    True,
                    "data.packing: false",
                )
            )
        if t.get("eval_every") or t.get("eval_strategy") == "epoch":
            key = "eval_every" if t.get("eval_every") else "eval_strategy"
            issues.append(
                ConfigIssue(
                    ("training", key),
                    "grpo has no eval loss to compute during training (its loss is not a "
                    "likelihood); the final eval scores the trained model",
                    t[key],
                    "no training.eval_every, eval_strategy: steps",
                )
            )
        return issues

    def build_trainer(self, ctx: TrainContext) -> Any:
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        from ftsweep.objectives.rewards import build_rewards
        from ftsweep.worker.trainer import training_arguments

        cfg = ctx.cfg
        grpo = cfg["training"]["grpo"]
        code = cfg["data"]["family"] == "code"
        rows = [
            {"prompt": e.prompt, "reference": e.reference}
            | ({"tests": list(e.record["tests"])} if code else {})
            for e in ctx.train_examples
        ]
        model_cfg = cfg["model"]
        args = training_arguments(
            cfg,
            ctx.run,
            False,  # no eval-loss passes: refused at validation (config_problems)
            GRPOConfig,
            num_generations=grpo["group_size"],
            beta=grpo["kl_coef"],
            max_completion_length=grpo["max_completion_length"],
            temperature=grpo["temperature"],
            disable_dropout=True,
            # The frozen reference TRL loads for full / freeze: the run's own loading rules.
            model_init_kwargs={
                "use_safetensors": None if model_cfg["allow_pickle"] else True,
                "revision": model_cfg["revision"],
            },
            trust_remote_code=model_cfg["trust_remote_code"],
        )
        _reference_on_disk(ctx)
        # TRL counts prompt + completion tokens into state.num_input_tokens_seen itself;
        # the Trainer's own count finds no input_ids in GRPO's batches and warns each step.
        args.include_num_input_tokens_seen = "no"
        return GRPOTrainer(
            model=ctx.model,
            reward_funcs=build_rewards(cfg),  # type: ignore[arg-type]  # list is invariant
            args=args,  # type: ignore[arg-type]  # a GRPOConfig: training_arguments(cls=GRPOConfig)
            train_dataset=Dataset.from_list(rows),
            processing_class=ctx.tok,
            callbacks=ctx.callbacks,
        )

    def finish(self, model: Any) -> None:
        from ftsweep.worker.preference import drop_reference_adapter

        drop_reference_adapter(model)


def _reference_on_disk(ctx: TrainContext) -> None:
    """Point TRL's reference at the starting weights when they exist only in memory.

    For full / freeze TRL loads its frozen KL reference from the policy's
    ``config._name_or_path``. A stage's starting point (model.from_run) is its parent's
    model, merged in memory when the parent trained an adapter: that path names the base
    model, so the reference would be the base, not the parent. The starting weights are
    written once under the run's checkpoints/ (removed with them when the run completes)
    and the path pointed there. Before training, so a resumed run writes the same weights.
    """
    import torch
    from peft import PeftModel

    if not ctx.cfg["model"].get("from_run") or ctx.cfg["training"]["grpo"]["kl_coef"] == 0:
        return
    if isinstance(ctx.model, PeftModel):  # TRL's reference: the adapter disabled
        return
    ref = ctx.run.file("checkpoints") / "reference"
    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not dist or torch.distributed.get_rank() == 0:
        ref.mkdir(parents=True, exist_ok=True)
        ctx.model.save_pretrained(ref, safe_serialization=True)
    if dist:
        torch.distributed.barrier()
    ctx.model.config._name_or_path = str(ref)
