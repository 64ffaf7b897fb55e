"""Preference objectives (training.objective: dpo) on TRL's DPOTrainer.

The worker's story is unchanged: the method has already parameterised the model (full,
freeze, a LoRA-family adapter); this module only swaps the Trainer. TRL tokenizes the
pairs itself (prompt, prompt + chosen, prompt + rejected, eos appended) and computes the
loss against a reference: a frozen copy of the loaded weights for full and freeze, the
adapter's own frozen copy (TRL's "ref" adapter, dropped after training) for peft models.
The run directory, metrics log, heartbeat and checkpoints work as for sft: the same
callbacks, the same TrainingArguments fields.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ftsweep.data import formats
from ftsweep.data.records import load_split_records
from ftsweep.rundir import RunDir
from ftsweep.worker.callbacks import NonFiniteLossError
from ftsweep.worker.dataset import IGNORE, Example
from ftsweep.worker.trainer import training_arguments


def as_instruction(record: dict[str, Any]) -> dict[str, Any]:
    """A preference record read as the instruction record its chosen answer completes."""
    return {
        "instruction": record["prompt"],
        "input": record.get("input") or "",
        "output": record["chosen"],
        "lang": record.get("lang"),
    }


def preference_rows(
    cfg: dict[str, Any], paths: dict[str, str], split: str, limit: int | None
) -> list[dict[str, str]]:
    """{prompt, chosen, rejected} rows for TRL: the prompt in the run's template headers."""
    records, _ = load_split_records(cfg["data"], paths, split)
    template = cfg["data"]["template"]
    rows = []
    for rec in records[:limit] if limit else records:
        prompt, _ = formats.render_instruction(as_instruction(rec), template)
        rows.append({"prompt": prompt, "chosen": rec["chosen"], "rejected": rec["rejected"]})
    return rows


def build_dpo_trainer(
    model: Any,
    tok: Any,
    cfg: dict[str, Any],
    run: RunDir,
    train_rows: list[dict[str, str]],
    eval_rows: list[dict[str, str]] | None,
    callbacks: list[Any],
) -> Any:
    """TRL's DPOTrainer with the run's training arguments and the NaN guard."""
    from datasets import Dataset
    from peft import PeftModel
    from trl import DPOConfig, DPOTrainer

    class GuardedDPOTrainer(DPOTrainer):  # type: ignore[misc]
        def compute_loss(  # type: ignore[override]
            self, model: Any, inputs: Any, return_outputs: bool = False, **kw: Any
        ) -> Any:
            out = super().compute_loss(model, inputs, return_outputs=return_outputs, **kw)
            loss = out[0] if return_outputs else out
            if not torch.isfinite(loss.detach()).all():
                raise NonFiniteLossError(
                    f"non-finite DPO loss ({loss.item()}) at step "
                    f"{self.state.global_step + 1}; lower training.lr or training.dpo.beta"
                )
            return out

    dpo = cfg["training"]["dpo"]
    args = training_arguments(
        cfg,
        run,
        eval_rows is not None,
        DPOConfig,
        beta=dpo["beta"],
        loss_type=[dpo["loss_type"]],
        max_length=cfg["data"]["max_length"],
        # The shipped pairs differ in a short answer: keep the prompt's start, like sft.
        truncation_mode="keep_start",
        disable_dropout=True,
    )
    ref = None
    if not isinstance(model, PeftModel):  # full / freeze: a frozen copy of the start point
        ref = copy.deepcopy(model).eval().requires_grad_(False)
    return GuardedDPOTrainer(
        model=model,
        ref_model=ref,
        args=args,  # type: ignore[arg-type]  # a DPOConfig: training_arguments(cls=DPOConfig)
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tok,
        callbacks=callbacks,
    )


def drop_reference_adapter(model: Any) -> None:
    """Remove TRL's frozen "ref" adapter so the saved artefact is the trained one only."""
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and "ref" in peft_config:
        model.delete_adapter("ref")
        model.set_adapter("default")


def pair_margins(
    model: Any, tok: Any, examples: list[Example], batch_size: int, device: torch.device
) -> dict[str, float]:
    """``log p(chosen) - log p(rejected)`` per eval example, after the example's prompt.

    Each answer is scored as DPO trains it: the prompt's tokens, then the answer's and
    eos, the loss on the answer and eos only.
    """
    from ftsweep.worker.evaluate import per_example_loss

    scored = []
    for e in examples:
        if "rejected" not in e.record:
            raise ValueError(
                f"preference_accuracy needs preference records; {e.example_id!r} has no rejected"
            )
        for side in ("chosen", "rejected"):
            scored.append(_answer_example(tok, e, side))
    nll = per_example_loss(model, scored, tok.pad_token_id, batch_size, device)
    return {
        e.example_id: nll[f"{e.example_id}\x00rejected"][0] - nll[f"{e.example_id}\x00chosen"][0]
        for e in examples
    }


def _answer_example(tok: Any, e: Example, side: str) -> Example:
    prompt = tok(e.prompt, add_special_tokens=False)["input_ids"]
    answer = tok(str(e.record[side]), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    head = [tok.bos_token_id] if tok.bos_token_id is not None else []
    ids = head + prompt + answer
    labels = [IGNORE] * (len(head) + len(prompt)) + answer
    return Example(f"{e.example_id}\x00{side}", ids, labels, e.prompt, "", e.record)
