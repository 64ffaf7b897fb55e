"""Prompt templates beyond the built-in ones: the tokenizer's chat template, and Jinja.

``data.template`` is a built-in name (formats.TEMPLATES), ``chat`` or a mapping
``{prompt | prompt_file, completion}`` of Jinja templates over the record's fields.

* ``chat`` turns an instruction record into a user/assistant exchange rendered by the
  tokenizer's own chat template (``tokenizer_config.json`` / ``chat_template.jinja``).
  The completion is what the template writes after the generation prompt: the answer
  and the template's end-of-turn marker, so the model learns to stop.
* A Jinja template renders in a sandboxed environment (no access to Python internals,
  STYLE 11) with StrictUndefined: a field the record lacks is an error naming it, never
  an empty string. Autoescape is off on purpose: this is a prompt, not HTML, and escaping
  would change what the model reads.

Whatever the template, the worker puts the loss on the completion only
(worker/dataset.py), so prompt and completion are always rendered separately.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ftsweep.data.formats import ChatTokenizer, _render

DEFAULT_COMPLETION = {"instruction": "{{ output }}", "code": "{{ solution }}"}


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
    )


@lru_cache(maxsize=64)
def compile_template(source: str) -> Any:
    """A compiled Jinja template; jinja2.TemplateSyntaxError (with .lineno) when bad."""
    return _env().from_string(source)


def render_jinja(
    record: Mapping[str, Any], template: Mapping[str, Any], family: str
) -> tuple[str, str]:
    """(prompt, completion) from a ``{prompt, completion}`` template mapping.

    Raises ValueError naming the undefined field or the failing expression.
    """
    from jinja2 import TemplateError

    completion = template.get("completion") or DEFAULT_COMPLETION[family]
    try:
        prompt = compile_template(template["prompt"]).render(**record)
        answer = compile_template(completion).render(**record)
    except TemplateError as exc:
        raise ValueError(f"data.template: {exc}") from None
    return prompt, answer


def user_text(record: Mapping[str, Any]) -> str:
    """The user's turn for an instruction record: the instruction, then its input."""
    text = str(record["instruction"])
    return f"{text}\n\n{record['input']}" if record.get("input") else text


def chat_segments(record: Mapping[str, Any], tok: ChatTokenizer) -> tuple[str, str]:
    """(generation prompt, trained completion) of an instruction record as a chat.

    The completion is everything the template writes for the assistant's turn, end
    marker included; it is found as what the full rendering adds after the prompt, which
    requires a template whose renderings of successive prefixes extend one another.
    """
    messages = [
        {"role": "user", "content": user_text(record)},
        {"role": "assistant", "content": str(record["output"])},
    ]
    head = _render(tok, messages[:1], generation=True)
    full = _render(tok, messages, generation=False)
    if not full.startswith(head):
        raise ValueError(
            "the chat template is not prefix-stable: the rendered exchange does not start "
            "with the rendered generation prompt, so the answer cannot be located"
        )
    return head, full[len(head) :]


def has_chat_template(tok: Any) -> bool:
    return bool(getattr(tok, "chat_template", None))


__all__ = ["chat_segments", "compile_template", "has_chat_template", "render_jinja", "user_text"]
