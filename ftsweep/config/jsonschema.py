"""The JSON Schema of an experiment file, generated from the pydantic models.

``ftsweep schema`` prints it; editors use it for completion and checking as you type
(docs/experiments.md). The schema module documents most fields by a comment above
them (the file is the user interface, and comments read better there than
``Field(description=...)``), so those comments become the fields' descriptions here.

What the schema cannot say, ``ftsweep validate`` still checks: a matrix's axes and a
search's space depend on each method's own parameters, so the schema lists the method
names and leaves their parameters open.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel

from ftsweep.config import generation, schema

SCHEMA_ID = "https://ftsweep.invalid/experiment.schema.json"  # a name, never fetched
_FIELD = re.compile(r"^\s+(\w+):\s")  # `name: type = default` in a class body
_COMMENT = re.compile(r"^\s+#\s?(.*)$")


def field_comments(cls: type[BaseModel]) -> dict[str, str]:
    """Field -> the comment lines directly above it and any comment at its line's end."""
    out: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        comment = _COMMENT.match(line)
        if comment:
            above.append(comment.group(1).strip())
            continue
        field = _FIELD.match(line)
        if field and field.group(1) in cls.model_fields:
            trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            text = " ".join([*above, trailing]).strip()
            if text:
                out[field.group(1)] = text
        above = []
    return out


def _models() -> list[type[BaseModel]]:
    return [
        obj
        for module in (schema, generation)
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    ]


def _method_names() -> list[str]:
    from ftsweep.methods import METHODS

    return sorted(METHODS)


def _method_entry(names: list[str]) -> dict[str, Any]:
    """One entry of matrix.method: a name, or {name, <param or dotted key>: value(s)}."""
    return {
        "anyOf": [
            {"type": "string", "enum": names},
            {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": names}},
                "required": ["name"],
                "additionalProperties": True,
            },
        ]
    }


def experiment_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an experiment file."""
    comments = {m.__name__: field_comments(m) for m in _models()}
    doc = schema.ExperimentFile.model_json_schema(mode="validation")
    for name, definition in [("ExperimentFile", doc), *doc.get("$defs", {}).items()]:
        for field, prop in definition.get("properties", {}).items():
            text = comments.get(name, {}).get(field)
            if text and "description" not in prop:
                prop["description"] = text
    names = _method_names()
    entry = _method_entry(names)
    doc["properties"]["matrix"] = {
        "description": "the grid: method entries (each with its own axes) times shared "
        "dotted axes such as training.lr: [1e-3, 3e-3]; include / exclude / zip",
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "method": {"anyOf": [{"type": "array", "items": entry}, entry]},
                    "include": {"type": "array", "items": {"type": "object"}},
                    "exclude": {"type": "array", "items": {"type": "object"}},
                },
                "additionalProperties": True,
            },
            {"type": "null"},
        ],
    }
    # model.path may be left out when model.from_run names a parent (its base is used)
    model = doc["$defs"]["ModelBlock"]
    model["required"] = [r for r in model.get("required", []) if r != "path"]
    model["anyOf"] = [{"required": ["path"]}, {"required": ["from_run"]}]
    space = doc["$defs"]["SearchBlock"]["properties"]["space"]
    space["properties"] = {"method": {"type": "array", "items": entry}}
    space["additionalProperties"] = True
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ftsweep experiment file",
        **doc,
    }
