"""Field mapping: a record in the user's own layout → the family's canonical record.

``data.fields`` (config/schema.py: FieldMap) names where each field the family needs
sits in the user's records: MetaMathQA's ``query``/``response`` become ``instruction``
and ``output``, an OpenAI-style ``messages`` list of ``{role, content}`` becomes the
ShareGPT ``conversations`` of ``{from, value}``. Everything after reading (cleaning,
templates, evaluators) sees canonical records only, so a mapping is applied once, where
records are read. The user's own keys are kept beside the canonical ones, so a custom
prompt template may use either name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# canonical name → whether a record must have it, per family
FAMILY_FIELDS: dict[str, dict[str, bool]] = {
    "instruction": {"instruction": True, "input": False, "output": True},
    "code": {"problem": True, "entry_point": True, "solution": True, "tests": False},
    "dialogue": {"messages": True},
    "preference": {"prompt": True, "input": False, "chosen": True, "rejected": True},
    "unpaired": {"prompt": True, "input": False, "completion": True, "label": True},
}


def missing_fields(rec: Mapping[str, Any], family: str, fields: Mapping[str, Any]) -> str | None:
    """Why a record lacks a required field, named as the user's data names it."""
    missing = []
    for canon, required in FAMILY_FIELDS[family].items():
        src = fields.get(canon, canon)
        if required and (src not in rec or rec[src] in (None, "")):
            missing.append(src if src == canon else f"{src} (data.fields.{canon})")
    if not missing:
        return None
    need = ", ".join(str(fields.get(c, c)) for c, req in FAMILY_FIELDS[family].items() if req)
    return f"missing {', '.join(missing)} ({family} records need {need})"


def apply_fields(
    rec: dict[str, Any], family: str, fields: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The canonical record for ``rec`` (unchanged when there is no mapping).

    Raises ValueError, naming the user's keys, for a dialogue turn that cannot be mapped.
    """
    if not fields:
        return rec
    out = dict(rec)
    if family == "dialogue":
        out["conversations"] = _turns(rec.get(fields["messages"]), fields)
    else:
        for canon in FAMILY_FIELDS[family]:
            src = fields.get(canon, canon)
            if src is not None and src in rec:
                out[canon] = rec[src]
            elif src != canon:  # mapped away: a key of the canonical name is not this field
                out.pop(canon, None)
    id_key = fields.get("id", "id")
    if id_key is None:
        out.pop("id", None)
    elif id_key != "id" and id_key in rec:
        out["id"] = rec[id_key]
    return out


def _turns(turns: Any, fields: Mapping[str, Any]) -> Any:
    if not isinstance(turns, list):
        return turns  # the family check reports the shape
    if (fields["role"], fields["content"], fields.get("roles")) == ("from", "value", None):
        return turns
    roles = fields.get("roles")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise ValueError(f"{fields['messages']}[{i}] must be a mapping")
        for key in ("role", "content"):
            if fields[key] not in turn:
                raise ValueError(
                    f"{fields['messages']}[{i}] is missing key {fields[key]!r} (data.fields.{key})"
                )
        role = turn[fields["role"]]
        if roles is not None:
            if role not in roles:
                raise ValueError(
                    f"{fields['messages']}[{i}].{fields['role']} = {role!r} is not in "
                    f"data.fields.roles; valid: {', '.join(map(str, roles))}"
                )
            role = roles[role]
        out.append({"from": role, "value": turn[fields["content"]]})
    return out
