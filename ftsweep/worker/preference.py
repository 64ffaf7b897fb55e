"""Preference objectives (training.objective: dpo, orpo, kto) on TRL's trainers.

The worker's story is unchanged: the method has already parameterised the model (full,
freeze, a LoRA-family adapter); this module only swaps the Trainer. Rows reach TRL as
text (the prompt already rendered, data/pairs.py); TRL tokenizes them itself (prompt,
prompt + answer, eos appended). DPO and KTO compute their loss against a reference: a
frozen copy of the loaded weights for full and freeze, the adapter's own frozen copy
(TRL's "ref" adapter, dropped after training) for peft models. ORPO has none.
The run directory, metrics log, heartbeat and checkpoints work as for sft: the same
callbacks, the same TrainingArguments fields.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import torch

from ftsweep.data import pairs
from ftsweep.data.records import load_split_records
from ftsweep.rundir import RunDir
from ftsweep.worker.callbacks import NonFiniteLossError
from ftsweep.worker.dataset import IGNORE, Example
from ftsweep.worker.trainer import training_arguments


def preference_rows(
    cfg: dict[str, Any], paths: dict[str, str], split: str, limit: int | None, tok: Any
) -> list[dict[str, Any]]:
    """{prompt, chosen, rejected} rows for TRL, as text: the prompt rendered in the run's
    template headers (or the chat template, for conversational records)."""
    records, _ = load_split_records(cfg["data"], paths, split)
    template = cfg["data"]["template"]
    return [
        {
            "prompt": pairs.render_prompt(rec, template, tok),
            "chosen": pairs.answer_text(rec["chosen"]),
            "rejected": pairs.answer_text(rec["rejected"]),
        }
        for rec in (records[:limit] if limit else records)
    ]


def unpaired_rows(
    cfg: dict[str, Any], paths: dict[str, str], split: str, limit: int | None, tok: Any
) -> list[dict[str, Any]]:
    """{prompt, completion, label} rows for KTO, in a seeded order.

    Unpaired records give one row each; a preference pair gives two, its chosen answer
    desirable and its rejected one not. ``limit`` counts records (pairs), as for dpo.
    The order is shuffled with the run's seed so each batch mixes labels and prompts:
    KTO estimates its KL term by pairing each answer with the next row's prompt.
    """
    if cfg["data"]["family"] == "preference":
        rows = []
        for pair in preference_rows(cfg, paths, split, limit, tok):
            rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
            rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    else:
        records, _ = load_split_records(cfg["data"], paths, split)
        template = cfg["data"]["template"]
        rows = [
            {
                "prompt": pairs.render_prompt(rec, template, tok),
                "completion": pairs.answer_text(rec["completion"]),
                "label": bool(pairs.label_value(rec["label"])),
            }
            for rec in (records[:limit] if limit else records)
        ]
    random.Random(f"kto:{cfg['seed']}").shuffle(rows)
    return rows


def guarded(trainer_cls: type, objective: str, knob: str) -> type:
    """``trainer_cls`` whose loss stops the run when it is not finite (the NaN guard)."""

    class Guarded(trainer_cls):  # type: ignore[misc,valid-type]
        def compute_loss(  # type: ignore[override]
            self, model: Any, inputs: Any, return_outputs: bool = False, **kw: Any
        ) -> Any:
            out = super().compute_loss(model, inputs, return_outputs=return_outputs, **kw)
            loss = out[0] if return_outputs else out
            if not torch.isfinite(loss.detach()).all():
                raise NonFiniteLossError(
                    f"non-finite {objective} loss ({loss.item()}) at step "
                    f"{self.state.global_step + 1}; lower training.lr or {knob}"
                )
            return out

    Guarded.__name__ = f"Guarded{trainer_cls.__name__}"
    return Guarded


def frozen_reference(model: Any) -> Any:
    """The reference a DPO/KTO loss compares with: a frozen copy of the start point for
    full and freeze; None for a peft model (TRL then copies its adapter as "ref")."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return None
    return copy.deepcopy(model).eval().requires_grad_(False)


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
    from trl import DPOConfig, DPOTrainer

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
    return guarded(DPOTrainer, "DPO", "training.dpo.beta")(
        model=model,
        ref_model=frozen_reference(model),
        args=args,  # a DPOConfig: training_arguments(cls=DPOConfig)
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tok,
        callbacks=callbacks,
    )


def build_orpo_trainer(
    model: Any,
    tok: Any,
    cfg: dict[str, Any],
    run: RunDir,
    train_rows: list[dict[str, str]],
    eval_rows: list[dict[str, str]] | None,
    callbacks: list[Any],
) -> Any:
    """TRL's ORPOTrainer (trl.experimental.orpo): no reference model at all."""
    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    args = training_arguments(
        cfg,
        run,
        eval_rows is not None,
        ORPOConfig,
        beta=cfg["training"]["orpo"]["beta"],
        max_length=cfg["data"]["max_length"],
        disable_dropout=True,
    )
    # ORPO's batches carry chosen_/rejected_input_ids but no input_ids, so transformers
    # cannot count tokens (it warns every step): tokens_seen stays 0 for ORPO runs.
    args.include_num_input_tokens_seen = "no"
    return guarded(ORPOTrainer, "ORPO", "training.orpo.beta")(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tok,
        callbacks=callbacks,
    )


def build_kto_trainer(
    model: Any,
    tok: Any,
    cfg: dict[str, Any],
    run: RunDir,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]] | None,
    callbacks: list[Any],
) -> Any:
    """TRL's KTOTrainer on {prompt, completion, label} rows, against a frozen reference."""
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    kto = cfg["training"]["kto"]
    args = training_arguments(
        cfg,
        run,
        eval_rows is not None,
        KTOConfig,
        beta=kto["beta"],
        desirable_weight=kto["desirable_weight"],
        undesirable_weight=kto["undesirable_weight"],
        max_length=cfg["data"]["max_length"],
        disable_dropout=True,
    )
    # KTO's KL estimate pairs each row with its neighbour in a fixed-order batch, so the
    # rows go in the order unpaired_rows shuffled them (with the run's seed).
    args.train_sampling_strategy = "sequential"
    return guarded(KTOTrainer, "KTO", "training.kto.beta")(
        model=model,
        ref_model=frozen_reference(model),
        args=args,
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
    answer = tok(pairs.answer_text(e.record[side]), add_special_tokens=False)["input_ids"] + [
        tok.eos_token_id
    ]
    head = [tok.bos_token_id] if tok.bos_token_id is not None else []
    ids = head + prompt + answer
    labels = [IGNORE] * (len(head) + len(prompt)) + answer
    return Example(f"{e.example_id}\x00{side}", ids, labels, e.prompt, "", e.record)
