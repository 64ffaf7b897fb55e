"""Append-only JSONL logs into the store, parsed by DuckDB itself (no per-row Python).

``load_logs(con, kind, reads)`` reads a batch of metrics.jsonl or evals.jsonl files,
each from its byte watermark on, and inserts their rows; it returns, per file, the new
watermark (bytes and lines up to the last complete line, and a fingerprint of that
line) and, per run, what was inserted. The caller owns the transaction. The rules
(DESIGN invariants 4, 6):

* a last line without its newline is the in-flight record of a writer that may still
  finish it (or was killed): it is not read now, and the watermark stops before it;
* a metric logged twice for the same (run_id, step, name), e.g. re-logged after a
  resume, keeps its LAST value, also across appends (the older row is deleted);
* NaN and infinities become NULL;
* a line that is not JSON, not an object, or lacks a usable required field (metrics:
  step, name, value; evals: metric, value) is counted and named ("file:line: why"),
  never silently dropped. Fields are converted as DuckDB's ``from_json`` does (the
  string "5" is the step 5); one that cannot be converted (step "x") is missing.

Python only moves bytes: it seeks to the watermark, reads to the end, cuts at the last
newline and counts lines (C-level ``bytes`` methods, nothing per row), checks the
text is UTF-8 (bad bytes become U+FFFD) and hands one string per file to DuckDB as an
Arrow array built from one buffer;
DuckDB splits it into numbered lines and parses each with ``from_json``.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from ftsweep.store.scan import line_fingerprint

METRIC_FIELDS = {
    "step": "INTEGER",
    "epoch": "DOUBLE",
    "name": "VARCHAR",
    "value": "DOUBLE",
    "time": "DOUBLE",
}
EVAL_FIELDS = {
    "split": "VARCHAR",
    "example_id": "VARCHAR",
    "metric": "VARCHAR",
    "value": "DOUBLE",
    "prediction": "VARCHAR",
    "reference": "VARCHAR",
}
# Batches of log text above this go to DuckDB as an Arrow table (no copy, parallel scan);
# smaller ones as a query parameter.
ARROW_ABOVE = 16 << 20
_KINDS = {
    "metrics": (METRIC_FIELDS, ("step", "name", "value"), "metric"),
    "evals": (EVAL_FIELDS, ("metric", "value"), "eval"),
}


@dataclass(frozen=True)
class FileMark:
    """How far a log has been read: to the end of its last complete line."""

    bytes: int = 0
    lines: int = 0
    tail: str | None = None  # line_fingerprint() of the last line read


@dataclass(frozen=True)
class LogRead:
    run_id: str
    path: str
    start: FileMark  # FileMark() reads the whole file
    append: bool  # True: rows of earlier lines are in the store (a re-logged step replaces)


@dataclass
class LogResult:
    files: dict[str, FileMark] = field(default_factory=dict)  # by path
    rows: dict[str, int] = field(default_factory=dict)  # run_id -> rows inserted
    max_step: dict[str, int | None] = field(default_factory=dict)  # metrics only
    bad: list[tuple[str, int, str]] = field(default_factory=list)  # (path, line, why)

    @property
    def inserted(self) -> int:
        return sum(self.rows.values())


def read_new(path: str, start: FileMark) -> tuple[bytes | memoryview, FileMark]:
    """The complete lines after ``start`` as valid UTF-8 bytes, and the mark after them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(start.bytes)
            data = fh.read()
    except FileNotFoundError:
        return b"", start
    end = data.rfind(b"\n") + 1  # a torn last line stays for the next read
    if end == 0:
        return b"", start
    last = data.rfind(b"\n", 0, end - 1) + 1
    mark = FileMark(
        start.bytes + end, start.lines + data.count(b"\n", 0, end), line_fingerprint(data[last:end])
    )
    text = memoryview(data)[:end]
    if not data.isascii():
        try:
            str(text, "utf-8")
        except UnicodeDecodeError:  # shown as U+FFFD; such a file is re-read whole next time
            return data[:end].decode("utf-8", errors="replace").encode("utf-8"), FileMark(
                mark.bytes, mark.lines, None
            )
    return text, mark


def _content(texts: list[bytes | memoryview]) -> pa.Array:
    """One Arrow string array over the texts, built with one copy (no per-line objects)."""
    offsets = array("q", [0])
    for t in texts:
        offsets.append(offsets[-1] + len(t))
    return pa.LargeStringArray.from_buffers(
        len(texts), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(texts))
    )


def _struct(fields: dict[str, str]) -> str:
    return json.dumps(fields).replace("'", "''")


def _stage(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    reads: Sequence[LogRead],
    texts: list[bytes | memoryview],
) -> None:
    """Temp table _rows: one row per new line, parsed (``bad`` holds unusable lines)."""
    fields, required, _ = _KINDS[kind]
    cols = ", ".join(
        f"CASE WHEN isfinite(j.{c}) THEN j.{c} END AS {c}" if t == "DOUBLE" else f"j.{c} AS {c}"
        for c, t in fields.items()
    )
    missing = " OR ".join(f"j.{c} IS NULL" for c in required)
    columns = {
        "run_id": [r.run_id for r in reads],
        "path": [r.path for r in reads],
        "first": [r.start.lines for r in reads],
    }
    if sum(len(t) for t in texts) > ARROW_ABOVE:
        table = pa.table({**columns, "content": _content(texts)})
        # DuckDB scans an Arrow table one record batch per thread: a few files per batch.
        con.register("_texts", pa.Table.from_batches(table.to_batches(max_chunksize=4)))
    else:  # small: no Arrow scan, which imports pandas (seconds) the first time
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _texts AS SELECT * FROM (SELECT unnest($1) AS "
            "run_id, unnest($2) AS path, unnest($3) AS first, decode(unnest($4)) AS content)",
            [columns["run_id"], columns["path"], columns["first"], [bytes(t) for t in texts]],
        )
    try:
        # Each text ends with a newline, so the last element of its split is "".
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _rows AS
            SELECT run_id, path, line, {cols}, CASE WHEN j IS NULL OR {missing} THEN l END AS bad
            FROM (SELECT run_id, path, first + i AS line, l,
                         try(from_json(l, '{_struct(fields)}')) AS j
                  FROM (SELECT run_id, path, first, len(lst) AS n, unnest(lst) AS l,
                               generate_subscripts(lst, 1) AS i
                        FROM (SELECT *, string_split(content, chr(10)) AS lst FROM _texts))
                  WHERE i < n AND l <> '')""")
    finally:
        con.unregister("_texts")
        con.execute("DROP TABLE IF EXISTS _texts")


def _why(text: str, what: str) -> str | None:
    if not text.strip():
        return None  # a blank line: nothing was lost
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"not JSON ({getattr(exc, 'msg', exc)})"
    if not isinstance(value, dict):
        return "not a JSON object"
    return f"malformed {what} row {text:.200}"


def _insert_metrics(
    con: duckdb.DuckDBPyConnection,
    reads: Sequence[LogRead],
    known_max: Callable[[str], int | None],
    out: LogResult,
) -> None:
    per_run = con.execute(
        "SELECT run_id, count(*), min(step), max(step) FROM _rows WHERE bad IS NULL GROUP BY run_id"
    ).fetchall()
    # Appended lines that re-log a (step, name) already stored replace it.
    appends = {r.run_id for r in reads if r.append}
    overlap = [
        run_id
        for run_id, _, lo, _ in per_run
        if run_id in appends and (hi := known_max(run_id)) is not None and lo <= hi
    ]
    if overlap:
        con.execute(
            """DELETE FROM metrics USING (SELECT DISTINCT run_id, step, name FROM _rows
                       WHERE bad IS NULL AND list_contains(?, run_id)) k
                       WHERE metrics.run_id = k.run_id AND metrics.step = k.step
                         AND metrics.name = k.name""",
            [overlap],
        )
    con.execute("""CREATE OR REPLACE TEMP TABLE _dups AS
        SELECT run_id, step, name, max(line) AS keep, count(*) AS n FROM _rows
        WHERE bad IS NULL GROUP BY run_id, step, name HAVING count(*) > 1""")
    extra = dict(con.execute("SELECT run_id, sum(n - 1) FROM _dups GROUP BY run_id").fetchall())
    cols = "r.run_id, r.step, r.epoch, r.name, r.value, r.time"
    if extra:
        con.execute(f"""INSERT INTO metrics BY NAME SELECT {cols} FROM _rows r
            LEFT JOIN _dups d ON r.run_id = d.run_id AND r.step = d.step AND r.name = d.name
            WHERE r.bad IS NULL AND (d.keep IS NULL OR d.keep = r.line)""")
    else:
        con.execute(f"INSERT INTO metrics BY NAME SELECT {cols} FROM _rows r WHERE r.bad IS NULL")
    out.rows = {run_id: n - int(extra.get(run_id, 0)) for run_id, n, _, _ in per_run}
    out.max_step = {run_id: hi for run_id, _, _, hi in per_run}


def load_logs(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    reads: Sequence[LogRead],
    known_max: Callable[[str], int | None] = lambda _: None,
) -> LogResult:
    """Read these files from their watermarks into ``metrics`` or ``eval_examples``.

    ``known_max(run_id)``: the largest step already stored for an appended run.
    """
    out = LogResult()
    if not reads:
        return out
    texts: list[bytes | memoryview] = []
    for r in reads:
        text, out.files[r.path] = read_new(r.path, r.start)
        texts.append(text)
    _stage(con, kind, reads, texts)
    del texts
    for path, line, text in con.execute(
        "SELECT path, line, bad FROM _rows WHERE bad IS NOT NULL ORDER BY path, line"
    ).fetchall():
        why = _why(text, _KINDS[kind][2])
        if why is not None:
            out.bad.append((path, line, why))
    if kind == "metrics":
        _insert_metrics(con, reads, known_max, out)
    else:
        con.execute("""INSERT INTO eval_examples BY NAME SELECT run_id, split, example_id, metric,
                       value, prediction, reference FROM _rows WHERE bad IS NULL""")
        out.rows = dict(
            con.execute(
                "SELECT run_id, count(*) FROM _rows WHERE bad IS NULL GROUP BY run_id"
            ).fetchall()
        )
    con.execute("DROP TABLE IF EXISTS _rows")
    con.execute("DROP TABLE IF EXISTS _dups")
    return out


def as_problem(bad: tuple[str, int, str]) -> str:
    path, line, why = bad
    return f"{path}:{line}: {why}"


__all__ = [
    "EVAL_FIELDS",
    "METRIC_FIELDS",
    "FileMark",
    "LogRead",
    "LogResult",
    "as_problem",
    "load_logs",
    "read_new",
]
