"""Preference and unpaired records: their two forms, their checks, their rendering.

A preference record is a prompt with a preferred and a dispreferred answer
(``prompt``, ``chosen``, ``rejected``); an unpaired record is one answer labelled
desirable or not (``prompt``, ``completion``, ``label: true/false``, for KTO). Each
comes in two forms, as TRL's data sets do:

* standard: ``prompt`` is text, rendered in the run's instruction template (with the
  optional ``input`` under its own header, as instruction records are);
* conversational: ``prompt`` is a list of ``{role, content}`` messages (system, user,
  assistant; the last one not the assistant's), rendered with the tokenizer's chat
  template and its generation prompt; an answer is then text or a one-message list
  ``[{role: assistant, content: ...}]``.

Everything downstream (the trainers, the evaluators) sees the rendered prompt text and
the answers as text, so one tokenisation serves both forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ftsweep.data import formats

ROLES = ("system", "user", "assistant")
# The answer keys of each family.
ANSWERS = {"preference": ("chosen", "rejected"), "unpaired": ("completion",)}


def pair_problem(rec: Mapping[str, Any], family: str) -> str | None:
    """Why a preference or unpaired record cannot be used (None when it can)."""
    if rec.get("input") is not None and not isinstance(rec["input"], str):
        return f"input must be text, got {type(rec['input']).__name__}"
    problem = _prompt_problem(rec["prompt"])
    if problem:
        return problem
    for key in ANSWERS[family]:
        problem = _answer_problem(key, rec[key])
        if problem:
            return problem
    if family == "unpaired" and label_value(rec["label"]) is None:
        return (
            f"label must be true (a desirable answer) or false (an undesirable one), "
            f"got {rec['label']!r}"
        )
    if family == "preference" and answer_text(rec["chosen"]).strip() == (
        answer_text(rec["rejected"]).strip()
    ):
        return "chosen and rejected are the same answer; a pair must prefer one of two"
    return None


def _prompt_problem(prompt: Any) -> str | None:
    if isinstance(prompt, str):
        return None
    if not isinstance(prompt, list) or not prompt:
        return (
            f"prompt must be text or a non-empty list of {{role, content}} messages, "
            f"got {type(prompt).__name__}"
        )
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or set(message) < {"role", "content"}:
            return f"prompt[{i}] must be a {{role, content}} message"
        if message["role"] not in ROLES:
            return f"prompt[{i}].role = {message['role']!r}; valid: {', '.join(ROLES)}"
        if not isinstance(message["content"], str):
            return f"prompt[{i}].content must be text, got {type(message['content']).__name__}"
    if prompt[-1]["role"] == "assistant":
        return "the prompt's last message is the assistant's; the answer goes in its own field"
    return None


def _answer_problem(key: str, answer: Any) -> str | None:
    if isinstance(answer, str):
        return None
    if (
        isinstance(answer, list)
        and len(answer) == 1
        and isinstance(answer[0], Mapping)
        and answer[0].get("role") == "assistant"
        and isinstance(answer[0].get("content"), str)
    ):
        return None
    return (
        f"{key} must be text or one assistant message [{{role: assistant, content: ...}}], "
        f"got {type(answer).__name__}"
    )


def label_value(label: Any) -> bool | None:
    """An unpaired record's label as a bool; None when it is neither true nor false.

    JSON and Parquet hold booleans; a CSV cell is text, so "true" / "false" (any case)
    are read as the booleans they spell. Nothing else is: 1, "yes" or "0" are refused
    rather than guessed.
    """
    if isinstance(label, bool):
        return label
    if isinstance(label, str) and label.strip().lower() in ("true", "false"):
        return label.strip().lower() == "true"
    return None


def answer_text(answer: Any) -> str:
    """An answer as text: a one-message list gives its content."""
    if isinstance(answer, list):
        return str(answer[0]["content"])
    return str(answer)


def is_conversational(rec: Mapping[str, Any]) -> bool:
    return isinstance(rec.get("prompt"), list)


def render_prompt(rec: Mapping[str, Any], template: Any, tok: Any) -> str:
    """The prompt text the model continues: chat template or instruction headers."""
    if is_conversational(rec):
        messages = [{"role": m["role"], "content": m["content"]} for m in rec["prompt"]]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text)
    instruction = {
        "instruction": rec["prompt"],
        "input": rec.get("input") or "",
        "output": "",
        "lang": rec.get("lang"),
    }
    return formats.render_instruction(instruction, template)[0]


def prompt_and_answer(rec: Mapping[str, Any], template: Any, tok: Any) -> tuple[str, str]:
    """(prompt, the answer an sft step or the loss evaluator reads): chosen, or the completion."""
    answer = rec["chosen"] if "chosen" in rec else rec["completion"]
    return render_prompt(rec, template, tok), answer_text(answer)
