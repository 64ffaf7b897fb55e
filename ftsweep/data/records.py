"""Reading data records from local files, with an explicit policy for malformed ones.

Supported: .jsonl (one object a line), .json (a list of objects), .csv, .parquet.
A record is malformed when it does not parse (invalid JSON, bytes that are not
UTF-8) or lacks a key its family needs; the policy decides: "error" stops with
file:line, "drop" skips it and counts it. Lines are counted as an editor counts them
(each newline byte), and decoding happens per line or per row, so a bad byte is
reported at its own line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ftsweep.data.fields import apply_fields, missing_fields
from ftsweep.data.formats import _messages
from ftsweep.data.pairs import pair_problem
from ftsweep.errors import FtsweepError

REQUIRED: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "output"),
    "dialogue": ("conversations",),
    # Unit tests are optional: a record without them trains, but pass_at_1 cannot score
    # it (config/inputs.py refuses pass_at_1 on an eval split with such records).
    "code": ("problem", "solution", "entry_point"),
    # A prompt with a preferred and a dispreferred answer (training.objective: dpo).
    "preference": ("prompt", "chosen", "rejected"),
    # One answer, labelled desirable (true) or not (false): training.objective kto.
    "unpaired": ("prompt", "completion", "label"),
}


class BadRecordError(FtsweepError):
    """A data file that cannot be used; ``line`` and ``reason`` when one place is to blame."""

    exit_code = 2

    def __init__(self, message: str, line: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.line = line
        self.reason = reason or message


def _not_utf8(byte: int, column: int | str) -> str:
    where = f"column {column}" if isinstance(column, int) else f"field {column!r}"
    return f"not UTF-8 text: byte 0x{byte:02x} at {where} (save the file as UTF-8)"


def _jsonl_rows(path: Path) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    with open(path, "rb") as fh:  # bytes: a text reader decodes ahead, off by lines
        for i, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                out.append((i, ValueError(_not_utf8(raw[exc.start], exc.start + 1))))
                continue
            if not line.strip():
                continue
            try:
                out.append((i, json.loads(line)))
            except json.JSONDecodeError as exc:
                out.append((i, ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}")))
    return out


def _json_rows(path: Path) -> list[tuple[int, Any]]:
    """A .json file is one document: a bad byte or bad JSON spoils all of it."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        reason = _not_utf8(raw[exc.start], column)
        raise BadRecordError(f"{path}:{line}: {reason}", line, reason) from None
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
        raise BadRecordError(f"{path}:{exc.lineno}: {reason}", exc.lineno, reason) from None
    if not isinstance(data, list):
        return [(1, ValueError("a .json data file holds a list of records"))]
    return [(i, rec) for i, rec in enumerate(data, start=1)]


def _csv_rows(path: Path) -> list[tuple[int, Any]]:
    """Rows as csv.DictReader makes them, numbered by the line each row starts on.

    Undecodable bytes are kept as surrogates while parsing, so that only the rows
    holding them are malformed.
    """
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    out: list[tuple[int, Any]] = []
    while header is not None:
        start = reader.line_num + 1
        row = next(reader, None)
        if row is None:
            break
        if not row:
            continue  # a blank line, skipped as DictReader skips it
        rec: dict[Any, Any] = dict(zip(header, row, strict=False))
        rec.update({key: None for key in header[len(row) :]})
        if len(row) > len(header):
            rec[None] = row[len(header) :]
        out.append((start, _undecodable(rec) or rec))
    return out


def _undecodable(rec: dict[Any, Any]) -> ValueError | None:
    for key, value in rec.items():
        for char in value if isinstance(value, str) else "":
            if "\udc80" <= char <= "\udcff":
                return ValueError(_not_utf8(ord(char) - 0xDC00, key))
    return None


def _raw_rows(path: Path) -> list[tuple[int, Any]]:
    """(line or row number, parsed object or an Exception) for every record in the file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_rows(path)
    if suffix == ".json":
        return _json_rows(path)
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(i, rec) for i, rec in enumerate(pq.read_table(path).to_pylist(), start=1)]
    raise BadRecordError(
        f"{path}: unsupported data file type {suffix!r}; valid: .jsonl, .json, .csv, .parquet"
    )


def _problem(
    rec: Any, family: str, evaluated: bool = False, fields: dict[str, Any] | None = None
) -> str | None:
    """Why ``rec`` cannot be used (None when it can); ``evaluated``: it is an eval record.

    With ``fields`` (data.fields), ``rec`` is in the user's layout and messages name the
    user's keys."""
    if isinstance(rec, Exception):
        return str(rec)
    if not isinstance(rec, dict):
        return f"a record is an object, got {type(rec).__name__}"
    if fields:
        if (reason := missing_fields(rec, family, fields)) is not None:
            return reason
        try:
            rec = apply_fields(rec, family, fields)
        except ValueError as exc:
            return str(exc)
    missing = [k for k in REQUIRED[family] if k not in rec or rec[k] in (None, "")]
    if missing:
        return f"missing {', '.join(missing)} ({family} records need {', '.join(REQUIRED[family])})"
    if family in ("preference", "unpaired"):
        return pair_problem(rec, family)
    text_keys = {
        "instruction": ("instruction", "input", "output"),
        "code": ("problem", "solution", "entry_point"),
    }.get(family, ())
    for key in text_keys:
        if key in rec and rec[key] is not None and not isinstance(rec[key], str):
            return f"{key} must be text, got {type(rec[key]).__name__}"
    if family == "dialogue":
        try:  # the same check the worker's renderer applies (roles, turn shape)
            messages = _messages(rec)
        except ValueError as exc:
            return str(exc)
        if evaluated and messages[-1]["role"] != "assistant":
            return "a dialogue must end with a 'gpt' turn (its reply is what is evaluated)"
    if (
        family == "code"
        and rec.get("tests") is not None
        and not (isinstance(rec["tests"], list) and all(isinstance(t, str) for t in rec["tests"]))
    ):
        return "tests must be a list of assert statements (text)"
    return None


def check_file(
    path: Path,
    family: str,
    policy: str,
    evaluated: bool = False,
    fields: dict[str, Any] | None = None,
) -> list[tuple[int, str]]:
    """Problems validation should report: malformed records under the 'error' policy."""
    if policy == "drop":
        return []
    try:
        rows = _raw_rows(path)
    except BadRecordError as exc:
        return [(exc.line or 1, exc.reason)]
    except (OSError, ValueError) as exc:
        return [(1, f"cannot read: {exc}")]
    problems = [
        (line, r)
        for line, rec in rows
        if (r := _problem(rec, family, evaluated, fields)) is not None
    ]
    seen: dict[str, int] = {}
    for line, rec in (
        rows if evaluated else []
    ):  # ids key the per-example scores that paired tests compare
        rid = rec.get((fields or {}).get("id", "id")) if isinstance(rec, dict) else None
        if rid is not None and str(rid) in seen:
            problems.append((line, f"duplicate id {rid!r} (first on line {seen[str(rid)]})"))
        elif rid is not None:
            seen[str(rid)] = line
    return problems


def _hub_records(hub: dict[str, Any], split_name: str) -> list[tuple[int, Any]]:
    """Rows of a hub data set split, numbered like file lines (1-based)."""
    try:
        import datasets
    except ImportError as exc:
        raise BadRecordError(
            "data.hub needs the `datasets` package: pip install 'ftsweep[hub]'"
        ) from exc
    ds = datasets.load_dataset(
        hub["name"], hub["config"], split=split_name, revision=hub["revision"]
    )
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

    Returns the records and counts (kept, malformed, dropped_<reason>) for the result;
    a mixture (``data.train`` as a list, data/mixture.py) adds ``source:<name>`` counts.
    """
    from ftsweep.data.clean import split_holdout

    if split == "train" and isinstance(data.get("train"), list):
        return _mixture_records(data, paths)
    holdout = bool(data.get("eval_fraction")) and split in ("train", "eval")
    where, rows = _source_rows(data, paths, "train" if holdout else split)
    records, counts = _usable(data, where, rows, split, data.get("fields"), holdout)
    if holdout:
        train, held = split_holdout(records, data["eval_fraction"], data["split_seed"])
        records = train if split == "train" else held
    return records, {**counts, "kept": len(records)}


def _usable(
    data: dict[str, Any],
    where: str,
    rows: list[tuple[int, Any]],
    split: str,
    fields: dict[str, Any] | None,
    holdout: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows that pass the malformed-record policy and cleaning, mapped and counted."""
    from ftsweep.data.clean import clean_records

    family, good, malformed = data["family"], [], 0
    for line, rec in rows:
        reason = _problem(rec, family, split != "train", fields)
        if reason is None:
            good.append(apply_fields(rec, family, fields))
        elif data["on_bad_record"] == "drop":
            malformed += 1
        else:
            raise BadRecordError(
                f"{where}:{line}: {reason} (set data.on_bad_record: drop to "
                "skip and count malformed records)"
            )
    # Duplicates are dropped from training data only: an eval or test set is scored as
    # published, or its numbers stop being comparable with anyone else's. A holdout is
    # cut from deduplicated train, so no duplicate straddles train and eval.
    opts = {
        **data["clean"],
        "drop_duplicates": data["clean"]["drop_duplicates"] and (holdout or split == "train"),
    }
    records, stats = clean_records(good, family, opts)
    return records, {**stats.as_dict(), "malformed": malformed, "kept": len(records)}


def _mixture_records(
    data: dict[str, Any], paths: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from ftsweep.data.mixture import mix, path_key

    per_source = []
    totals: dict[str, int] = {}
    for source in data["train"]:
        path = Path(paths[path_key(source)])
        fields = source.get("fields") or data.get("fields")
        records, counts = _usable(data, str(path), _raw_rows(path), "train", fields)
        for key, n in counts.items():
            totals[key] = totals.get(key, 0) + n
        per_source.append((source, records))
    records, drawn = mix(per_source, data["split_seed"])
    return records, {**totals, **drawn, "kept": len(records)}
