"""Pure functions that turn one data record into the text a training worker tokenizes.

Three record families (see data/README.md and scripts/make_data.py):

* instruction (Alpaca): ``instruction``, ``input``, ``output``, ``lang``
* dialogue (ShareGPT): ``conversations`` = [{"from": "system"|"human"|"gpt", "value": ...}]
* code: ``problem``, ``entry_point``, ``solution``, ``tests``

Contract for the worker: the loss goes on the completion (or the segments flagged True)
only; the worker appends the tokenizer's eos to an instruction/code completion. Dialogue
segments already end with the chat template's end-of-reply marker (eos for
models/tiny-base), so nothing is appended there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

TEMPLATES: tuple[str, ...] = ("alpaca", "alpaca_zh", "auto")

_ALPACA = {
    # name: (instruction header, input header, response header)
    "alpaca": ("### Instruction:\n", "### Input:\n", "### Response:\n"),
    "alpaca_zh": ("### 指令:\n", "### 输入:\n", "### 输出:\n"),
}
_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}


class ChatTokenizer(Protocol):
    """The one tokenizer method these functions need (transformers' tokenizers have it)."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


def _require(record: Mapping[str, Any], keys: Sequence[str], family: str) -> None:
    if not isinstance(record, Mapping):
        raise ValueError(f"{family} record must be a mapping, got {type(record).__name__}")
    for key in keys:
        if key not in record:
            rid = record.get("id", "<no id>")
            raise ValueError(
                f"{family} record {rid!r} is missing key {key!r} (required: {', '.join(keys)})"
            )
        if not isinstance(record[key], str) and family != "dialogue":
            raise ValueError(
                f"{family} record {record.get('id', '<no id>')!r}: key {key!r} "
                f"must be a string, got {type(record[key]).__name__}"
            )


def render_instruction(record: Mapping[str, Any], template: str = "auto") -> tuple[str, str]:
    """(prompt, completion) for an Alpaca-style record.

    ``template`` is one of TEMPLATES; "auto" picks "alpaca_zh" for ``lang == "zh"`` and
    "alpaca" otherwise. The input section is left out when ``input`` is empty.
    """
    if template not in TEMPLATES:
        raise ValueError(
            f"unknown instruction template {template!r}; valid templates: {', '.join(TEMPLATES)}"
        )
    _require(record, ("instruction", "output"), "instruction")
    if template == "auto":
        template = "alpaca_zh" if record.get("lang") == "zh" else "alpaca"
    head_instruction, head_input, head_response = _ALPACA[template]
    prompt = f"{head_instruction}{record['instruction']}\n\n"
    if record.get("input"):
        prompt += f"{head_input}{record['input']}\n\n"
    return prompt + head_response, record["output"]


def _messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
    _require(record, ("conversations",), "dialogue")
    turns = record["conversations"]
    rid = record.get("id", "<no id>")
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"dialogue record {rid!r}: 'conversations' must be a non-empty list")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping) or "from" not in turn or "value" not in turn:
            raise ValueError(
                f"dialogue record {rid!r}: conversations[{i}] is missing key "
                f"{'from' if 'from' not in turn else 'value'!r}"
                if isinstance(turn, Mapping)
                else f"dialogue record {rid!r}: conversations[{i}] must be a mapping"
            )
        if turn["from"] not in _ROLES:
            raise ValueError(
                f"dialogue record {rid!r}: conversations[{i}].from = "
                f"{turn['from']!r}; valid: {', '.join(_ROLES)}"
            )
        messages.append({"role": _ROLES[turn["from"]], "content": str(turn["value"])})
    return messages


def _render(tokenizer: ChatTokenizer, messages: list[dict[str, str]], generation: bool) -> str:
    if not messages:
        return ""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    return str(text)


def render_dialogue(record: Mapping[str, Any], tokenizer: ChatTokenizer) -> list[tuple[str, bool]]:
    """The conversation rendered with the tokenizer's chat template, as segments.

    Concatenated, the segments are exactly the full rendering. A segment is flagged True
    when it is an assistant reply that carries loss: the reply text plus whatever the
    template puts after it (tiny-base: ``</s>\n``), so the model learns to stop. Role
    headers, system and user turns are never trained.
    Requires a template whose renderings of successive prefixes extend one another.
    """
    messages = _messages(record)
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            head = _render(tokenizer, messages[:i], generation=True)
            segments.append((head[len(done) :], False))
            done = head
        full = _render(tokenizer, messages[: i + 1], generation=False)
        if not full.startswith(done):
            raise ValueError(
                "chat template is not prefix-stable: rendering turn "
                f"{i} rewrites earlier text; cannot locate assistant content"
            )
        segments.append((full[len(done) :], message["role"] == "assistant"))
        done = full
    return [(text, train) for text, train in segments if text]


def dialogue_prompt(record: Mapping[str, Any], tokenizer: ChatTokenizer) -> tuple[str, str]:
    """(prompt up to the last user turn with the generation prompt, last assistant reply)."""
    messages = _messages(record)
    if messages[-1]["role"] != "assistant" or len(messages) < 2:
        raise ValueError(
            f"dialogue record {record.get('id', '<no id>')!r} must end with a "
            "'gpt' turn to be evaluated"
        )
    return _render(tokenizer, messages[:-1], generation=True), messages[-1]["content"]


def render_code(record: Mapping[str, Any]) -> tuple[str, str]:
    """(prompt, completion): the problem and entry point, then the solution source."""
    _require(record, ("problem", "entry_point", "solution"), "code")
    prompt = (
        f"### Problem:\n{record['problem']}\n\n"
        f"### Function:\n{record['entry_point']}\n\n### Solution:\n"
    )
    return prompt, record["solution"]
