"""Schema of a team's own data in the data block: field maps, mixture sources, templates.

Kept apart from schema.py so that the data block's new shapes read as one unit; schema.py
re-exports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ftsweep.config.strict import Strict


class FieldMap(Strict):
    """Where each field the family needs sits in your records (docs/experiments.md).

    Only the keys you set change; the defaults are the shipped formats' names. ``null``
    says your data has no such field (only ``input``, ``tests`` and ``id`` may be absent).
    """

    # instruction family
    instruction: str = "instruction"
    input: str | None = "input"
    output: str = "output"
    # code family
    problem: str = "problem"
    entry_point: str = "entry_point"
    solution: str = "solution"
    tests: str | None = "tests"
    # dialogue family: the list of turns, and each turn's role and text keys
    messages: str = "conversations"
    role: str = "from"
    content: str = "value"
    # Your role names -> system / user / assistant. None: the ShareGPT and OpenAI names
    # (system, human, user, gpt, assistant) are understood.
    roles: dict[str, Literal["system", "user", "assistant"]] | None = None
    # preference family (a prompt with a preferred and a dispreferred answer) and
    # unpaired family (one answer labelled desirable: true or undesirable: false)
    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    completion: str = "completion"
    label: str = "label"
    # Keys per-example scores by; None numbers the records instead.
    id: str | None = "id"


class DataSource(Strict):
    """One training set of a mixture (``data.train`` as a list)."""

    path: str = Field(description="local file, relative to the experiment file")
    # Multiplies the source's size: 1 uses every record once, 0.25 a seeded quarter of
    # them, 2.5 every record twice plus a seeded half. Drawn with data.split_seed.
    weight: float = Field(1.0, gt=0.0)
    # Names the source in counts (result.json data_counts); default: the file's stem.
    name: str | None = Field(None, min_length=1, max_length=80)
    # This source's field names; default: data.fields.
    fields: FieldMap | None = None

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem


class PromptTemplate(Strict):
    """Jinja templates over a record's fields (sandboxed; an undefined field is an error).

    Give ``prompt`` (the text) or ``prompt_file`` (a file, relative to the experiment
    file), not both; ``completion`` or ``completion_file`` likewise. The loss goes on the
    rendered completion only.
    """

    prompt: str | None = None
    prompt_file: str | None = None
    # Default: "{{ output }}" (instruction) or "{{ solution }}" (code).
    completion: str | None = None
    completion_file: str | None = None


__all__ = ["DataSource", "FieldMap", "PromptTemplate"]
