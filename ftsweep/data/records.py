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


def _hub_records(hub: dict[str, Any], split_name: str) -> list[tuple[int, Any]]:
    """Rows of a hub data set split, numbered like file lines (1-based)."""
    try:
        import datasets
    except ImportError as exc:
        raise BadRecordError("data.hub needs the `datasets` package: pip install 'ftsweep[hub]'") from exc
    ds = datasets.load_dataset(hub["name"], hub["config"], split=split_name,
                               revision=hub["revision"])
    return [(i, dict(row)) for i, row in enumerate(ds, start=1)]


def _source_rows(data: dict[str, Any], paths: dict[str, str], split: str) -> tuple[str, list]:
    hub = data.get("hub")
    if hub:
        split_name = hub[f"{split}_split"] if split != "train" else hub["train_split"]
        return f"hub:{hub['name']}[{split_name}]", _hub_records(hub, split_name)
    path = Path(paths[f"data.{split}"])
    return str(path), _raw_rows(path)


def has_split(data: dict[str, Any], split: str) -> bool:
    """Whether the data block provides this split (a file, a hub split or a holdout)."""
    if split == "train":
        return True
    if split == "eval" and data.get("eval_fraction"):
        return True
    hub = data.get("hub")
    return bool(hub[f"{split}_split"]) if hub else bool(data.get(split))


def load_split_records(
    data: dict[str, Any], paths: dict[str, str], split: str
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One split's records after the malformed-record policy, cleaning and holdout.

    Returns the records and counts (kept, malformed, dropped_<reason>) for the result.
    """
    from ftsweep.data.clean import clean_records, split_holdout

    holdout = bool(data.get("eval_fraction")) and split in ("train", "eval")
    where, rows = _source_rows(data, paths, "train" if holdout else split)
    family, good, malformed = data["family"], [], 0
    for line, rec in rows:
        reason = _problem(rec, family)
        if reason is None:
            good.append(rec)
        elif data["on_bad_record"] == "drop":
            malformed += 1
        else:
            raise BadRecordError(f"{where}:{line}: {reason} (set data.on_bad_record: drop to "
                                 "skip and count malformed records)")
    # Duplicates are dropped from training data only: an eval or test set is scored as
    # published, or its numbers stop being comparable with anyone else's. A holdout is
    # cut from deduplicated train, so no duplicate straddles train and eval.
    opts = {**data["clean"], "drop_duplicates": data["clean"]["drop_duplicates"]
            and (holdout or split == "train")}
    records, stats = clean_records(good, family, opts)
    if holdout:
        train, held = split_holdout(records, data["eval_fraction"], data["split_seed"])
        records = train if split == "train" else held
    return records, {**stats.as_dict(), "malformed": malformed, "kept": len(records)}
