"""Building the Trainer from a resolved config, and resuming a killed run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainingArguments

from ftsweep.rundir import METRICS, RunDir, read_json, read_jsonl
from ftsweep.worker.callbacks import GuardedTrainer
from ftsweep.worker.dataset import PadCollator, TokenDataset

OPTIMIZERS = {
    "adamw": "adamw_torch",
    "sgd": "sgd",
    "adafactor": "adafactor",
    "adamw_8bit": "adamw_bnb_8bit",
}


def evaluates_during_training(t: dict[str, Any]) -> bool:
    """Whether a resolved training block asks for eval-loss passes (steps or epochs)."""
    return bool(t.get("eval_every")) or t.get("eval_strategy") == "epoch"


def training_arguments(
    cfg: dict[str, Any],
    run: RunDir,
    has_eval: bool,
    cls: type[TrainingArguments] = TrainingArguments,
    **extra: Any,
) -> TrainingArguments:
    """The run's TrainingArguments; ``cls`` and ``extra``: a subclass (TRL's DPOConfig)
    and its own fields."""
    t = cfg["training"]
    ckpt = t["checkpoint_every"]
    by_epoch = t.get("eval_strategy") == "epoch"
    save_by_epoch = t.get("checkpoint_strategy") == "epoch"
    warmup: float | int = t["warmup_ratio"] or t["warmup_steps"]
    return cls(
        output_dir=str(run.file("checkpoints")),
        learning_rate=t["lr"],
        num_train_epochs=t["epochs"],
        max_steps=t["max_steps"] or -1,
        per_device_train_batch_size=t["batch_size"],
        per_device_eval_batch_size=cfg["eval"]["batch_size"],
        gradient_accumulation_steps=t["grad_accum"],
        warmup_steps=warmup,
        weight_decay=t["weight_decay"],
        lr_scheduler_type=t["scheduler"],
        optim=OPTIMIZERS[t["optimizer"]],
        max_grad_norm=t["max_grad_norm"] or 0.0,
        bf16=t["precision"] == "bf16",
        fp16=t["precision"] == "fp16",
        gradient_checkpointing=t["gradient_checkpointing"],
        train_sampling_strategy="group_by_length" if t["group_by_length"] else "random",
        neftune_noise_alpha=t["neftune_alpha"],
        eval_strategy=("epoch" if by_epoch else "steps") if has_eval else "no",
        eval_steps=t["eval_every"] if has_eval and not by_epoch else None,
        logging_strategy="steps",
        logging_steps=t["logging_every"],
        logging_nan_inf_filter=False,  # a NaN must show, not be averaged away
        include_num_input_tokens_seen="non_padding",
        save_strategy="epoch" if save_by_epoch else "steps" if ckpt else "no",
        save_steps=ckpt or 500,
        save_total_limit=1,
        restore_callback_states_from_checkpoint=True,  # early stopping's patience and best
        seed=cfg["seed"],
        data_seed=cfg["seed"],
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not _cuda(),
        # gloo is the only CPU backend; setting it for a single process makes accelerate
        # expect a process group that `--cpu` never creates.
        ddp_backend="gloo" if not _cuda() and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        **extra,
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_trainer(
    model: Any,
    tok: Any,
    cfg: dict[str, Any],
    run: RunDir,
    train: TokenDataset,
    eval_ds: TokenDataset | None,
    callbacks: list[Any],
    param_groups: list[dict] | None = None,
) -> GuardedTrainer:
    args = training_arguments(cfg, run, has_eval=eval_ds is not None)
    optimizers: tuple[Any, Any] = (None, None)
    if param_groups is not None:
        optimizers = (build_optimizer(param_groups, cfg["training"]), None)
    return GuardedTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        data_collator=PadCollator(tok.pad_token_id),
        callbacks=callbacks,
        optimizers=optimizers,
    )


def build_optimizer(groups: list[dict], t: dict[str, Any]) -> Any:
    """The configured optimizer over a method's own parameter groups (its lr per group)."""
    import torch

    wd = t["weight_decay"]
    if t["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=t["lr"], weight_decay=wd)
    if t["optimizer"] == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            groups,
            lr=t["lr"],
            weight_decay=wd,
            scale_parameter=False,
            relative_step=False,
            warmup_init=False,
        )
    return torch.optim.AdamW(groups, lr=t["lr"], weight_decay=wd)


def latest_checkpoint(run: RunDir) -> Path | None:
    """The newest complete Trainer checkpoint of an earlier, interrupted attempt."""
    root = run.file("checkpoints")
    if not root.is_dir():
        return None
    ckpts = [p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[1]), default=None)


class TrainingAlreadyFinished(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by ``SkipFinishedTraining`` once the checkpoint's training state is loaded."""


class SkipFinishedTraining(TrainerCallback):
    """Resume from a checkpoint at which training had ended, without taking a step.

    The Trainer checks for the end of training only after a step, so resumed from its
    final checkpoint (a run killed during the final evaluation or save) it trained one
    step more than an uninterrupted run. Letting ``train`` load the checkpoint (weights,
    also sharded or DeepSpeed ones, state, callbacks) and stopping it at
    ``on_train_begin`` keeps the Trainer's own loading for every strategy.
    """

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        raise TrainingAlreadyFinished


def training_finished_at(checkpoint: Path) -> bool:
    """Whether training had ended at this checkpoint: its last step, or stopped early."""
    state = read_json(checkpoint / "trainer_state.json")
    if int(state.get("global_step", 0)) >= int(state.get("max_steps", 0)) > 0:
        return True
    stopper = (state.get("stateful_callbacks") or {}).get("EarlyStopping") or {}
    stopper = stopper[0] if isinstance(stopper, list) and stopper else stopper
    return bool(isinstance(stopper, dict) and stopper.get("attributes", {}).get("stopped_early"))


def truncate_metrics(run: RunDir, checkpoint: Path) -> None:
    """Drop metric rows logged after the checkpoint we resume from: they will be logged again."""
    step = int(checkpoint.name.split("-")[1])
    rows = [r for r in read_jsonl(run.file(METRICS)) if r["step"] <= step]
    tmp = run.file(METRICS + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    os.replace(tmp, run.file(METRICS))
