"""Reading data records from local files, with an explicit policy for malformed ones.

Supported: .jsonl (one object a line), .json (a list of objects), .csv, .parquet.
A record is malformed when it does not parse or lacks a key its family needs; the
policy decides: "error" stops with file:line, "drop" skips it and counts it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftsweep.errors import FtsweepError

REQUIRED: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "output"),
    "dialogue": ("conversations",),
    "code": ("problem", "solution", "tests", "entry_point"),
}


class BadRecordError(FtsweepError):
    exit_code = 2


@dataclass
class Records:
    records: list[dict[str, Any]]
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def _raw_rows(path: Path) -> list[tuple[int, Any]]:
    """(line or row number, parsed object or an Exception) for every record in the file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        out: list[tuple[int, Any]] = []
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    out.append((i, json.loads(line)))
                except json.JSONDecodeError as exc:
                    out.append((i, ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}")))
        return out
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            return [(1, ValueError("a .json data file holds a list of records"))]
        return [(i, rec) for i, rec in enumerate(data, start=1)]
    if suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            return [(i, dict(row)) for i, row in enumerate(csv.DictReader(fh), start=2)]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(i, rec) for i, rec in enumerate(pq.read_table(path).to_pylist(), start=1)]
    raise BadRecordError(f"{path}: unsupported data file type {suffix!r}; "
                         "valid: .jsonl, .json, .csv, .parquet")


def _problem(rec: Any, family: str) -> str | None:
    if isinstance(rec, Exception):
        return str(rec)
    if not isinstance(rec, dict):
        return f"a record is an object, got {type(rec).__name__}"
    missing = [k for k in REQUIRED[family] if k not in rec or rec[k] in (None, "")]
    if missing:
        return f"missing {', '.join(missing)} (a {family} record needs {', '.join(REQUIRED[family])})"
    if family == "dialogue":
        conv = rec["conversations"]
        if not isinstance(conv, list) or not all(
            isinstance(t, dict) and "from" in t and "value" in t for t in conv
        ):
            return "conversations must be a list of {from, value} turns"
    if family == "code" and not isinstance(rec["tests"], list):
        return "tests must be a list of assert statements"
    return None


def read_records(path: Path, family: str, policy: str = "error") -> Records:
    out = Records(records=[])
    for line, rec in _raw_rows(path):
        reason = _problem(rec, family)
        if reason is None:
            out.records.append(rec)
        elif policy == "drop":
            out.dropped.append((line, reason))
        else:
            raise BadRecordError(f"{path}:{line}: {reason} (set data.on_bad_record: drop to skip "
                                 "and count malformed records)")
    return out


def check_file(path: Path, family: str, policy: str) -> list[tuple[int, str]]:
    """Problems validation should report: malformed records under the 'error' policy."""
    if policy == "drop":
        return []
    try:
        rows = _raw_rows(path)
    except (BadRecordError, OSError, json.JSONDecodeError) as exc:
        return [(1, str(exc))]
    return [(line, r) for line, rec in rows if (r := _problem(rec, family)) is not None]
