"""Record cleaning and the train/eval split of a single file. Pure and deterministic.

Every dropped record is counted by reason; the worker writes the counts into the
run's result, so a report can show that 3% of a data set was empty or duplicated.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Text fields per family; other keys (id, lang, tests...) are left untouched.
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "input", "output"),
    "code": ("problem", "solution"),
    "dialogue": (),  # the turns' "value" fields, handled below
    "preference": ("prompt", "input", "chosen", "rejected"),
    "unpaired": ("prompt", "input", "completion"),
}
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


@dataclass
class CleanStats:
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        return {"kept": self.kept, **{f"dropped_{k}": v for k, v in sorted(self.dropped.items())}}


def _strip_control(text: str) -> str:
    # Keep newlines and tabs: they are structure in code and dialogue.
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")


def _normalize(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip()


def _map_text(record: dict[str, Any], family: str, fn: Any) -> dict[str, Any]:
    out = dict(record)
    for key in TEXT_FIELDS[family]:
        if isinstance(out.get(key), str):
            out[key] = fn(out[key])
    if family == "dialogue" and isinstance(out.get("conversations"), list):
        out["conversations"] = [
            {**t, "value": fn(t["value"])} if isinstance(t.get("value"), str) else t
            for t in out["conversations"]
        ]
    return out


def _texts(record: dict[str, Any], family: str) -> list[str]:
    if family == "dialogue":
        return [str(t.get("value", "")) for t in record.get("conversations", [])]
    return [str(record.get(k) or "") for k in TEXT_FIELDS[family]]


def clean_records(
    records: list[dict[str, Any]], family: str, opts: dict[str, Any]
) -> tuple[list[dict[str, Any]], CleanStats]:
    stats = CleanStats()
    seen: set[str] = set()
    out = []
    for rec in records:
        if opts.get("strip_control"):
            rec = _map_text(rec, family, _strip_control)
        if opts.get("normalize_whitespace"):
            rec = _map_text(rec, family, _normalize)
        texts = _texts(rec, family)
        answer = texts[-1] if texts else ""
        if opts.get("drop_empty") and not answer.strip():
            stats.dropped["empty"] += 1
            continue
        if opts.get("max_chars") and sum(map(len, texts)) > opts["max_chars"]:
            stats.dropped["too_long"] += 1
            continue
        if opts.get("drop_duplicates"):
            key = json.dumps(texts, ensure_ascii=False)
            if key in seen:
                stats.dropped["duplicate"] += 1
                continue
            seen.add(key)
        out.append(rec)
    stats.kept = len(out)
    return out, stats


def split_holdout(
    records: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, eval): a seeded shuffle of indices, the first ``fraction`` held out.

    The order inside each part follows the file, so appending records to the file
    changes which ones are held out only through the shuffle, never silently.
    """
    n_eval = max(1, round(len(records) * fraction)) if records else 0
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    train = [r for i, r in enumerate(records) if i not in held]
    evals = [r for i, r in enumerate(records) if i in held]
    return train, evals
