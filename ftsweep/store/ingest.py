"""Ingest run directories into the store, in bulk and idempotently (DESIGN invariant 3).

Contract of ``ingest(con, run_dirs)``:

* For the set of runs given, every table's rows for those run_ids are deleted and
  re-inserted from the run directories, all in ONE transaction: re-ingesting the same
  directories yields identical tables (``runs.ingested_at`` aside), and a crash
  mid-ingest leaves the previous contents.
* Each table is filled by one ``INSERT ... SELECT`` from an Arrow table, never row by row.
* NaN and infinities become NULL. A torn last line of an append-only log is the
  in-flight record of a killed writer and is skipped silently; any other unreadable
  line or malformed row is counted in ``IngestStats.bad_rows`` and named in
  ``problems`` (invariant 6: counted and reported, never silently eaten).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ftsweep.rundir import EVALS, LAUNCH, METRICS, PROVENANCE, RunDir, finite_or_none, read_json

TABLES = ("runs", "metrics", "evals", "eval_examples")

_TS = pa.timestamp("us")
SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema(
        [
            ("run_id", pa.string()),
            ("experiment", pa.string()),
            ("method", pa.string()),
            ("status", pa.string()),
            ("seed", pa.int32()),
            ("params", pa.string()),
            ("config", pa.string()),
            ("fingerprints", pa.string()),
            ("run_dir", pa.string()),
            ("created_at", _TS),
            ("started_at", _TS),
            ("finished_at", _TS),
            ("failure_cause", pa.string()),
            ("failure_log_tail", pa.string()),
            ("trainable_params", pa.int64()),
            ("total_params", pa.int64()),
            ("trainable_pct", pa.float64()),
            ("peak_memory_mb", pa.float64()),
            ("wall_time_s", pa.float64()),
            ("train_time_s", pa.float64()),
            ("tokens_seen", pa.int64()),
            ("tokens_per_s", pa.float64()),
            ("steps", pa.int32()),
            ("artifact_size_mb", pa.float64()),
            ("final_eval", pa.string()),
            ("best_eval", pa.string()),
            ("best_step", pa.int32()),
            ("ingested_at", _TS),
            ("provenance", pa.string()),
            ("process_wall_s", pa.float64()),
        ]
    ),
    "metrics": pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int32()),
            ("epoch", pa.float64()),
            ("name", pa.string()),
            ("value", pa.float64()),
            ("time", pa.float64()),
        ]
    ),
    "evals": pa.schema(
        [
            ("run_id", pa.string()),
            ("split", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    ),
    "eval_examples": pa.schema(
        [
            ("run_id", pa.string()),
            ("split", pa.string()),
            ("example_id", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
            ("prediction", pa.string()),
            ("reference", pa.string()),
        ]
    ),
}

_RESULT_FLOATS = (
    "trainable_pct",
    "peak_memory_mb",
    "wall_time_s",
    "train_time_s",
    "tokens_per_s",
    "artifact_size_mb",
)
_RESULT_INTS = ("trainable_params", "total_params", "tokens_seen", "steps", "best_step")


@dataclass
class IngestStats:
    """What one ingest did. ``problems`` names each skipped run or bad row."""

    runs: int = 0
    metrics: int = 0
    evals: int = 0
    eval_examples: int = 0
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)

    def bad(self, where: str, why: str) -> None:
        self.bad_rows += 1
        self.problems.append(f"{where}: {why}")


@dataclass
class _Rows:
    tables: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in TABLES}
    )


def clean_json(value: Any) -> str | None:
    """Dump to JSON with non-finite floats as null (DuckDB's JSON rejects NaN)."""
    if value is None:
        return None
    return json.dumps(_finite(value), sort_keys=True)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _ts(epoch: Any) -> datetime | None:
    seconds = finite_or_none(epoch) if isinstance(epoch, int | float) else None
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def read_log(path: Path, stats: IngestStats) -> list[dict[str, Any]]:
    """Read an append-only JSONL log like ``rundir.read_jsonl`` but count bad lines.

    ``read_jsonl`` raises on a corrupt middle line, which would make one damaged run
    block ingest of the whole workspace; here it is counted and skipped instead.
    """
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                break  # torn last line: the in-flight record, never committed
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                stats.bad(f"{path}:{lineno}", f"not JSON ({exc.msg})")
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                stats.bad(f"{path}:{lineno}", "not a JSON object")
    return rows


def _run_row(rd: RunDir, spec: dict[str, Any], run_id: str, now: datetime) -> dict[str, Any]:
    result = rd.result() or {}
    failure = rd.failure() or {}
    prov_path = rd.file(PROVENANCE)
    launch = read_json(rd.file(LAUNCH)) if rd.file(LAUNCH).exists() else {}
    row: dict[str, Any] = {
        "run_id": run_id,
        "experiment": spec.get("experiment"),
        "method": spec.get("method"),
        "status": str(rd.read_state()),
        "seed": _int(spec.get("seed")),
        "params": clean_json(spec.get("params") or {}),
        "config": clean_json(spec.get("config") or {}),
        "fingerprints": clean_json(spec.get("fingerprints") or {}),
        "run_dir": str(rd.path.resolve()),
        "created_at": _ts(spec.get("created_at")),
        "started_at": _ts(result.get("started_at")),
        "finished_at": _ts(result.get("finished_at") or failure.get("time")),
        "failure_cause": failure.get("cause"),
        "failure_log_tail": failure.get("log_tail"),
        "final_eval": clean_json(result.get("final_eval")),
        "best_eval": clean_json(result.get("best_eval")),
        "ingested_at": now,
        "provenance": clean_json(read_json(prov_path)) if prov_path.exists() else None,
        "process_wall_s": finite_or_none(launch.get("process_wall_s")),
    }
    for key in _RESULT_FLOATS:
        value = result.get(key)
        row[key] = finite_or_none(value) if isinstance(value, int | float) else None
    for key in _RESULT_INTS:
        row[key] = _int(result.get(key))
    return row


def _metric_rows(rd: RunDir, run_id: str, stats: IngestStats) -> list[dict[str, Any]]:
    """Metric rows, one per (step, name): the LAST logged value wins.

    A run resumed from a checkpoint re-logs the steps after that checkpoint; keeping the
    last value means the store never holds a duplicate metric row (invariant 4), even
    if the worker did not trim the log on resume.
    """
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for r in read_log(rd.file(METRICS), stats):
        value, step = r.get("value"), _int(r.get("step"))
        if not isinstance(r.get("name"), str) or not isinstance(value, int | float) or step is None:
            stats.bad(str(rd.file(METRICS)), f"malformed metric row {r!r:.200}")
            continue
        epoch, at = r.get("epoch"), r.get("time")
        rows.pop((step, r["name"]), None)  # re-insert so order follows the last write
        rows[(step, r["name"])] = {
            "run_id": run_id,
            "step": step,
            "name": r["name"],
            "value": finite_or_none(value),
            "epoch": finite_or_none(epoch) if isinstance(epoch, int | float) else None,
            "time": finite_or_none(at) if isinstance(at, int | float) else None,
        }
    return list(rows.values())


def _eval_rows(rd: RunDir, spec: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The final evaluation's aggregate metrics (result.json ``final_eval``)."""
    result = rd.result() or {}
    final = result.get("final_eval") or {}
    split = result.get("eval_split") or ((spec.get("config") or {}).get("eval") or {}).get("split")
    return [
        {
            "run_id": run_id,
            "split": split,
            "metric": str(name),
            "value": finite_or_none(v) if isinstance(v, int | float) else None,
        }
        for name, v in sorted(final.items())
    ]


def _example_rows(rd: RunDir, run_id: str, stats: IngestStats) -> list[dict[str, Any]]:
    rows = []
    for r in read_log(rd.file(EVALS), stats):
        value = r.get("value")
        if not isinstance(r.get("metric"), str) or not isinstance(value, int | float):
            stats.bad(str(rd.file(EVALS)), f"malformed eval row {r!r:.200}")
            continue
        rows.append(
            {
                "run_id": run_id,
                "split": _str(r.get("split")),
                "metric": r["metric"],
                "example_id": _str(r.get("example_id")),
                "value": finite_or_none(value),
                "prediction": _str(r.get("prediction")),
                "reference": _str(r.get("reference")),
            }
        )
    return rows


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def collect(run_dirs: Iterable[RunDir], stats: IngestStats) -> dict[str, pa.Table]:
    """Read run directories into one Arrow table per store table (last wins per run_id)."""
    per_run: dict[str, dict[str, list[dict[str, Any]]]] = {}
    now = datetime.now(UTC).replace(tzinfo=None)
    for rd in run_dirs:
        try:
            spec = rd.spec()
            run_id = str(spec.get("run_id") or rd.run_id)
            per_run[run_id] = {
                "runs": [_run_row(rd, spec, run_id, now)],
                "metrics": _metric_rows(rd, run_id, stats),
                "evals": _eval_rows(rd, spec, run_id),
                "eval_examples": _example_rows(rd, run_id, stats),
            }
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            # One unreadable run must not block the others; it is reported, not dropped
            # silently.
            stats.bad(str(rd.path), f"run skipped: {type(exc).__name__}: {exc}")
    tables = {}
    for name in TABLES:
        rows = [row for parts in per_run.values() for row in parts[name]]
        tables[name] = pa.Table.from_pylist(rows, schema=SCHEMAS[name])
    return tables


def ingest(con: duckdb.DuckDBPyConnection, run_dirs: Iterable[RunDir]) -> IngestStats:
    """Replace the store's rows of these runs with their run directories' contents.

    ``con`` must be a read-write connection to a migrated store.
    """
    stats = IngestStats()
    tables = collect(run_dirs, stats)
    ids = tables["runs"].select(["run_id"])
    con.register("_ingest_ids", ids)
    con.execute("BEGIN TRANSACTION")
    try:
        for name in TABLES:
            con.execute(f"DELETE FROM {name} WHERE run_id IN (SELECT run_id FROM _ingest_ids)")
            con.register("_ingest_rows", tables[name])
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _ingest_rows")
            con.unregister("_ingest_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_ingest_ids")
    stats.runs = tables["runs"].num_rows
    stats.metrics = tables["metrics"].num_rows
    stats.evals = tables["evals"].num_rows
    stats.eval_examples = tables["eval_examples"].num_rows
    return stats
