"""The reward objective's worker side: pairs as token ids, TRL's RewardTrainer, scoring.

A reward model is the loaded model with a one-output sequence-classification head
(``AutoModelForSequenceClassification(num_labels=1)``, setup.load_model_and_tokenizer
with head "score"); it reads the score at the last token that is not padding. Training
(Bradley-Terry: ``-log sigmoid(score(chosen) - score(rejected))``) and evaluation
tokenise a pair the same way, here, so that reward_accuracy measures what was trained:
bos, the prompt, the answer, eos; a sequence over ``data.max_length`` loses the start
of its prompt, never its answer (the shipped pairs differ in a short answer).
"""

from __future__ import annotations

from typing import Any

import torch

from ftsweep.data import pairs
from ftsweep.data.records import load_split_records
from ftsweep.rundir import RunDir
from ftsweep.worker.dataset import Example
from ftsweep.worker.preference import guarded
from ftsweep.worker.trainer import training_arguments


def answer_ids(tok: Any, prompt: str, answer: str, max_length: int) -> list[int]:
    """Token ids of one scored sequence: bos, prompt (start cut to fit), answer, eos."""
    head = [tok.bos_token_id] if tok.bos_token_id is not None else []
    tail = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    room = max_length - len(head) - len(tail)
    if room <= 0:  # the answer alone fills the budget: keep its start
        return (head + tail)[:max_length]
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    return head + prompt_ids[len(prompt_ids) - min(room, len(prompt_ids)) :] + tail


def reward_rows(
    cfg: dict[str, Any], paths: dict[str, str], split: str, limit: int | None, tok: Any
) -> list[dict[str, list[int]]]:
    """{chosen_ids, rejected_ids} per pair: TRL's RewardTrainer takes them as they are."""
    records, _ = load_split_records(cfg["data"], paths, split)
    template, max_length = cfg["data"]["template"], cfg["data"]["max_length"]
    rows = []
    for rec in records[:limit] if limit else records:
        prompt = pairs.render_prompt(rec, template, tok)
        rows.append(
            {
                f"{side}_ids": answer_ids(tok, prompt, pairs.answer_text(rec[side]), max_length)
                for side in ("chosen", "rejected")
            }
        )
    return rows


def score_head(model: Any) -> Any:
    """The one-output linear head of a sequence-classification model (``score`` in
    transformers' decoder models)."""
    head = getattr(model, "score", None)
    if head is None:
        raise TypeError(f"{type(model).__name__} has no score head; the reward objective needs one")
    return head


def train_score_head(model: Any) -> None:
    """The head is new (randomly initialised): it trains whatever the method freezes, or
    freeze's top blocks would feed a head that never learns. peft models get the same
    through the SEQ_CLS task (modules_to_save, methods/peft_common.py)."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        score_head(model).requires_grad_(True)


def build_reward_trainer(
    model: Any,
    tok: Any,
    cfg: dict[str, Any],
    run: RunDir,
    train_rows: list[dict[str, list[int]]],
    eval_rows: list[dict[str, list[int]]] | None,
    callbacks: list[Any],
) -> Any:
    """TRL's RewardTrainer with the run's training arguments and the NaN guard."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    args = training_arguments(
        cfg,
        run,
        eval_rows is not None,
        RewardConfig,
        center_rewards_coefficient=cfg["training"]["reward"]["center_rewards_coefficient"],
        max_length=cfg["data"]["max_length"],
        disable_dropout=True,
    )
    return guarded(RewardTrainer, "reward", "training.lr")(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tok,
        callbacks=callbacks,
    )


@torch.no_grad()
def scores(
    model: Any, tok: Any, seqs: list[list[int]], batch_size: int, device: Any
) -> list[float]:
    """The model's scalar score of each token sequence (right-padded batches)."""
    out: list[float] = []
    for i in range(0, len(seqs), batch_size):
        chunk = seqs[i : i + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, s in enumerate(chunk):
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        out += [float(v) for v in logits[:, 0].float().cpu()]
    return out


def score_margins(
    model: Any, tok: Any, examples: list[Example], batch_size: int, device: Any, max_length: int
) -> dict[str, float]:
    """``score(prompt + chosen) - score(prompt + rejected)`` per eval example."""
    seqs = []
    for e in examples:
        if "rejected" not in e.record:
            raise ValueError(
                f"reward_accuracy needs preference records; {e.example_id!r} has no rejected"
            )
        for side in ("chosen", "rejected"):
            seqs.append(answer_ids(tok, e.prompt, pairs.answer_text(e.record[side]), max_length))
    values = scores(model, tok, seqs, batch_size, device)
    return {e.example_id: values[2 * i] - values[2 * i + 1] for i, e in enumerate(examples)}


def load_reward_model(run_dir: Any) -> tuple[Any, Any]:
    """(model, tokenizer) of a complete reward run, rebuilt from its artefact, in eval mode.

    Full weights load as they were saved; a peft adapter (with its score head, saved as
    modules_to_save) goes onto a freshly loaded score-head base.
    """
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ftsweep.methods import get_method
    from ftsweep.rundir import ARTIFACTS, RunDir
    from ftsweep.worker.setup import load_model_and_tokenizer

    run = RunDir(Path(run_dir))
    spec = run.spec()
    art = run.file(ARTIFACTS)
    cfg = spec["config"]
    method = get_method(cfg["method"]["name"])()
    tok = AutoTokenizer.from_pretrained(art)
    if method.saves_adapter:
        from peft import PeftModel

        from ftsweep.config.stages import parent_run_dir

        parent = parent_run_dir(spec, run.path)  # a stage's reward model: on its parent
        base, _ = load_model_and_tokenizer(
            cfg, spec["paths"]["model"], head="score", parent=str(parent) if parent else None
        )
        model = PeftModel.from_pretrained(base, art)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            art, use_safetensors=True, dtype="auto"
        )
    return model.eval(), tok
