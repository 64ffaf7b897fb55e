"""Records → token ids with loss masks, and the padding collator.

Loss is on the completion only (prompt tokens carry label -100): for instruction and
code records the completion is the answer, for dialogue every assistant turn. The
tokenizer's EOS ends each example so that the model learns to stop, which greedy
generation at eval time depends on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ftsweep.data import formats, pairs, templates

IGNORE = -100


@dataclass
class Example:
    example_id: str
    input_ids: list[int]
    labels: list[int]
    prompt: str  # generation prompt (for eval)
    reference: str  # expected completion (for eval)
    record: dict[str, Any]


def _pair(record: dict[str, Any], family: str, template: Any, tok: Any) -> tuple[str, str]:
    """(prompt, completion) of an instruction or code record under ``template``."""
    if isinstance(template, dict):  # a Jinja {prompt, completion} pair
        return templates.render_jinja(record, template, family)
    if template == "chat":
        return templates.chat_segments(record, tok)
    if family == "code":
        return formats.render_code(record)
    if family in ("preference", "unpaired"):  # the prompt and its chosen (or only) answer
        return pairs.prompt_and_answer(record, template, tok)
    return formats.render_instruction(record, template)


def segments(
    record: dict[str, Any], family: str, template: Any, tok: Any
) -> list[tuple[str, bool]]:
    """The example as text segments, each flagged True where it carries loss."""
    if family == "dialogue":
        return formats.render_dialogue(record, tok)
    prompt, completion = _pair(record, family, template, tok)
    return [(prompt, False), (completion, True)]


def eval_pair(record: dict[str, Any], family: str, template: Any, tok: Any) -> tuple[str, str]:
    """(generation prompt, reference answer)."""
    if family == "dialogue":
        return formats.dialogue_prompt(record, tok)
    if template == "chat":  # the reference is the answer, not the template's end marker
        return templates.chat_segments(record, tok)[0], str(record["output"])
    return _pair(record, family, template, tok)


def closes_itself(family: str, template: Any) -> bool:
    """Whether the rendering already ends the reply (a chat template's end-of-turn)."""
    return family == "dialogue" or template == "chat"


def encode(record: dict[str, Any], idx: int, split: str, data: dict[str, Any], tok: Any) -> Example:
    family, template = data["family"], data["template"]
    ids: list[int] = []
    labels: list[int] = []
    if tok.bos_token_id is not None:
        ids.append(tok.bos_token_id)
        labels.append(IGNORE)
    for text, trained in segments(record, family, template, tok):
        piece = tok(text, add_special_tokens=False)["input_ids"]
        ids += piece
        keep = trained or not data["completion_only_loss"]
        labels += piece if keep else [IGNORE] * len(piece)
    if not closes_itself(family, template):  # a chat template closes each assistant turn
        ids.append(tok.eos_token_id)
        labels.append(tok.eos_token_id)
    max_length = data["max_length"]
    if len(ids) > max_length:
        left = data["truncation_side"] == "left"
        cut = slice(len(ids) - max_length, None) if left else slice(max_length)
        ids, labels = ids[cut], labels[cut]
    prompt, reference = eval_pair(record, family, template, tok)
    return Example(str(record.get("id", f"{split}-{idx}")), ids, labels, prompt, reference, record)


def pack(examples: list[Example], max_length: int) -> list[Example]:
    """Concatenate examples into blocks of ``max_length`` tokens (the last may be shorter).

    Attention crosses example boundaries inside a block (plain packing): the price of
    fewer pad tokens. Each example keeps its own loss mask.
    """
    blocks: list[Example] = []
    ids: list[int] = []
    labels: list[int] = []
    for e in examples:
        ids += e.input_ids
        labels += e.labels
        while len(ids) >= max_length:
            blocks.append(
                Example(f"block-{len(blocks)}", ids[:max_length], labels[:max_length], "", "", {})
            )
            ids, labels = ids[max_length:], labels[max_length:]
    if ids:
        blocks.append(Example(f"block-{len(blocks)}", ids, labels, "", "", {}))
    return blocks


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, examples: list[Example]):
        # Examples whose completion was truncated away would contribute no loss at all.
        self.examples = [e for e in examples if any(lab != IGNORE for lab in e.labels)]
        self.skipped = len(examples) - len(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels}


@dataclass
class PadCollator:
    pad_token_id: int

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
