"""Ingest run directories into the store: incrementally, in bulk, idempotently (invariant 3).

Contract of ``ingest_workspace`` (every run directory) and ``ingest`` (the ones given):

* Only what changed since the last ingest is read (``scan.diff``: per-run watermarks
  kept in ``_ingest_state``): new runs, the new lines of growing logs, runs whose small
  files changed; a log that was replaced or rewritten is read whole again, and a run
  directory that is gone loses its rows. The result is exactly what a rebuild from the
  run directories would hold (``runs.ingested_at`` aside); the tests check it row for row.
* Work goes in batches of at most ``BATCH_BYTES`` of log text; each batch commits its
  rows together with its runs' new watermarks in ONE transaction, so a crash leaves
  every run either as it was or fully updated, and memory stays bounded.
* Logs are parsed by DuckDB (``bulk.py``); the small JSON files of a run become its
  ``runs`` and ``evals`` rows in Python (``rows.py``), one Arrow table per batch.
* Unreadable lines and runs are counted in ``IngestStats.bad_rows`` and named in
  ``problems`` (invariant 6); the store keeps each run's count in ``_ingest_state``.
* Every change bumps ``_store_meta.version`` and stamps the runs it touched, which is
  how a snapshot catches up with only those runs (``snapshot.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ftsweep.rundir import RunDir
from ftsweep.store import bulk, scan
from ftsweep.store.health import rollback_quietly
from ftsweep.store.rows import SCHEMAS, eval_rows, run_row
from ftsweep.store.state import TABLES, load_states, run_filters

BATCH_BYTES = 64 << 20  # of log text read per transaction: bounds memory, not speed
BATCH_RUNS = 500
MAX_PROBLEMS = 20  # kept per run in _ingest_state (all of them are reported at ingest)

_STATE = pa.schema(
    [
        ("key", pa.string()),
        ("run_id", pa.string()),
        ("status", pa.string()),
        ("small_sig", pa.string()),
        *[
            (f"{log}_{c}", t)
            for log in scan.LOGS
            for c, t in (
                ("ident", pa.string()),
                ("size", pa.int64()),
                ("mtime_ns", pa.int64()),
                ("bytes", pa.int64()),
                ("lines", pa.int64()),
                ("tail", pa.string()),
            )
        ],
        ("metrics_max_step", pa.int32()),
        ("metrics_bad", pa.int64()),
        ("evals_bad", pa.int64()),
        ("problems", pa.string()),
        ("version", pa.int64()),
    ]
)
_LOG_TABLE = {"metrics": "metrics", "evals": "eval_examples"}


@dataclass
class IngestStats:
    """What one ingest did. ``problems`` names each skipped run or bad row."""

    runs: int = 0  # run directories looked at
    updated: int = 0  # of which had something new
    deleted: int = 0  # run directories gone, rows removed
    metrics: int = 0  # rows written
    evals: int = 0
    eval_examples: int = 0
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)

    def bad(self, where: str, why: str) -> None:
        self.bad_rows += 1
        self.problems.append(f"{where}: {why}")

    def summary(self) -> str:
        text = (
            f"{self.runs} run dirs: {self.updated} updated, {self.deleted} removed; "
            f"{self.metrics:,} metric rows, {self.eval_examples:,} eval examples written"
        )
        return text + (f"; {self.bad_rows} bad rows" if self.bad_rows else "")


def ingest_workspace(
    con: duckdb.DuckDBPyConnection, runs_dir: Path, experiment_dir: str | None = None
) -> IngestStats:
    """Bring the store up to date with every run directory (of one experiment dir)."""
    states = load_states(con)
    files = scan.scan(runs_dir, experiment_dir)
    changes = scan.diff(files, states, scan.deleted_keys(states, files, experiment_dir))
    return apply(con, changes, states, IngestStats(runs=len(files)))


def ingest(
    con: duckdb.DuckDBPyConnection, run_dirs: Iterable[RunDir], runs_dir: Path | None = None
) -> IngestStats:
    """Bring the store up to date with these run directories (``runs_dir``: their
    workspace's runs/; by default the grandparent of each)."""
    dirs = list(run_dirs)
    if not dirs:
        return IngestStats()
    root = runs_dir or dirs[0].path.parent.parent
    states = load_states(con)
    files, gone = scan.scan_dirs(root, (rd.path for rd in dirs))
    return apply(con, scan.diff(files, states, gone), states, IngestStats(runs=len(files)))


def apply(
    con: duckdb.DuckDBPyConnection,
    changes: scan.Changes,
    states: Mapping[str, Mapping[str, Any]],
    stats: IngestStats,
) -> IngestStats:
    if not changes:
        return stats
    owners = {s["run_id"]: key for key, s in states.items()}
    if changes.deleted:
        _transaction(con, lambda v: _delete_runs(con, changes.deleted, owners))
        stats.deleted = len(changes.deleted)
    now = datetime.now(UTC).replace(tzinfo=None)
    for batch in _batches(changes.changed):
        _transaction(con, lambda v, b=batch: _apply_batch(con, b, owners, stats, now, v))
    return stats


def _transaction(con: duckdb.DuckDBPyConnection, body: Any) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute("UPDATE _store_meta SET version = version + 1 RETURNING version")
        version = row.fetchone()
        body(version[0] if version else 0)
        con.execute("COMMIT")
    except BaseException:
        rollback_quietly(con)  # keeps the real error (a full disk), see health.py
        raise


def _to_read(change: scan.RunChange) -> int:
    total = 0
    for log, action in change.logs.items():
        now = change.files.logs[log]
        if now is not None:
            mark = scan.watermark(change.state, log)
            total += now.size - (mark.bytes if action == "append" else 0)
    return total


def _batches(changed: list[scan.RunChange]) -> Iterator[list[scan.RunChange]]:
    batch: list[scan.RunChange] = []
    size = 0
    for change in changed:
        n = _to_read(change)
        if batch and (size + n > BATCH_BYTES or len(batch) >= BATCH_RUNS):
            yield batch
            batch, size = [], 0
        batch.append(change)
        size += n
    if batch:
        yield batch


def _delete(con: duckdb.DuckDBPyConnection, table: str, run_ids: Iterable[str]) -> None:
    for where in run_filters(run_ids):
        con.execute(f"DELETE FROM {table} WHERE {where}")


def _delete_runs(
    con: duckdb.DuckDBPyConnection, gone: list[Mapping[str, Any]], owners: dict[str, str]
) -> None:
    ids = [s["run_id"] for s in gone if owners.get(s["run_id"]) == s["key"]]
    for table in TABLES:
        _delete(con, table, ids)
    con.execute("DELETE FROM _ingest_state WHERE list_contains(?, key)", [[s["key"] for s in gone]])
    for s in gone:
        if owners.get(s["run_id"]) == s["key"]:
            del owners[s["run_id"]]


@dataclass
class _Plan:
    change: scan.RunChange
    run_id: str
    status: str | None
    logs: dict[str, str]  # log -> "append" | "full"
    problem: str | None = None  # set for a new run that cannot be ingested (no rows)


def _plan(
    change: scan.RunChange,
    owners: dict[str, str],
    stats: IngestStats,
    now: datetime,
    rows: dict[str, list[dict[str, Any]]],
) -> _Plan | None:
    """Build the run's runs/evals rows if needed; decide how each log is read."""
    old, key, rd = change.state, change.files.key, change.files.run_dir
    logs = dict(change.logs)
    status = old["status"] if old else None
    run_id = old["run_id"] if old else rd.run_id
    if change.run_row:
        try:
            spec = rd.spec()
            run_id = str(spec.get("run_id") or rd.run_id)
            row = run_row(rd, spec, run_id, now)
            evals = eval_rows(rd, spec, run_id)
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            # One unreadable run must not block the others; reported, not dropped silently.
            return _skip(change, stats, f"run skipped: {type(exc).__name__}: {exc}")
        if owners.get(run_id, key) != key:
            return _skip(
                change,
                stats,
                f"run skipped: run_id {run_id} is already the run in runs/{owners[run_id]}",
            )
        status = row["status"]
        rows["runs"].append(row)
        rows["evals"].extend(evals)
    if old is not None and old["run_id"] != run_id:  # a different run now: start over
        logs = {log: "full" for log in scan.LOGS}
    owners[run_id] = key
    return _Plan(change, run_id, status, logs)


def _skip(change: scan.RunChange, stats: IngestStats, why: str) -> _Plan | None:
    """Report a run that cannot be ingested. A run the store had keeps its rows (and is
    reported again next time); a new one is recorded as unreadable, without rows, so
    that readers do not find the snapshot behind on it until its files change."""
    path = str(change.files.path)
    stats.bad(path, why)
    if change.state is not None:
        return None
    return _Plan(change, change.files.run_dir.run_id, "unreadable", {}, f"{path}: {why}")


def _apply_batch(
    con: duckdb.DuckDBPyConnection,
    batch: list[scan.RunChange],
    owners: dict[str, str],
    stats: IngestStats,
    now: datetime,
    version: int,
) -> None:
    rows: dict[str, list[dict[str, Any]]] = {"runs": [], "evals": []}
    plans = [p for c in batch if (p := _plan(c, owners, stats, now, rows)) is not None]
    # Rows to replace: a run that changed identity loses all of them; a recomputed run
    # its runs/evals rows; a log read whole its log rows.
    stale: dict[str, set[str]] = {t: set() for t in TABLES}
    for p in plans:
        old = p.change.state
        if old is None:
            continue
        if old["run_id"] != p.run_id:
            for table in TABLES:
                stale[table].add(old["run_id"])
        if p.change.run_row:
            stale["runs"].add(p.run_id)
            stale["evals"].add(p.run_id)
        for log, action in p.logs.items():
            if action == "full":
                stale[_LOG_TABLE[log]].add(p.run_id)
    for table, ids in stale.items():
        _delete(con, table, ids)
    for table in ("runs", "evals"):
        _insert_rows(con, table, rows[table], SCHEMAS[table])
    stats.evals += len(rows["evals"])
    results = {log: _read_logs(con, log, plans) for log in scan.LOGS}
    for result in results.values():
        for bad in result.bad:
            stats.bad_rows += 1
            stats.problems.append(bulk.as_problem(bad))
    stats.metrics += results["metrics"].inserted
    stats.eval_examples += results["evals"].inserted
    stats.updated += len(plans)
    states = [_new_state(p, results, version) for p in plans]
    _insert_rows(con, "_ingest_state", states, _STATE, replace=True)


def _read_logs(con: duckdb.DuckDBPyConnection, log: str, plans: list[_Plan]) -> bulk.LogResult:
    reads = []
    for p in plans:
        action = p.logs.get(log)
        if action is None or p.change.files.logs[log] is None:
            continue
        mark = scan.watermark(p.change.state, log)
        start = (
            bulk.FileMark(mark.bytes, mark.lines, mark.tail)
            if action == "append"
            else bulk.FileMark()
        )
        path = str(p.change.files.path / scan.LOGS[log])
        reads.append(bulk.LogRead(p.run_id, path, start, action == "append"))
    known = {p.run_id: (p.change.state or {}).get("metrics_max_step") for p in plans}
    return bulk.load_logs(con, log, reads, known.get)


def _new_state(p: _Plan, results: dict[str, bulk.LogResult], version: int) -> dict[str, Any]:
    old: dict[str, Any] = dict(p.change.state or {})
    files = p.change.files
    state: dict[str, Any] = {
        **{f.name: old.get(f.name) for f in _STATE},
        "key": files.key,
        "run_id": p.run_id,
        "status": p.status,
        "small_sig": files.small_sig,
        "version": version,
    }
    problems = json.loads(old.get("problems") or "[]")
    for log, action in p.logs.items():
        result, now = results[log], files.logs[log]
        path = str(files.path / scan.LOGS[log])
        mark = result.files.get(path)
        append = action == "append"
        if now is None or mark is None:
            state.update(
                {
                    f"{log}_{c}": None
                    for c in ("ident", "size", "mtime_ns", "bytes", "lines", "tail")
                }
            )
        else:
            state.update(
                {
                    f"{log}_ident": now.ident,
                    f"{log}_size": now.size,
                    f"{log}_mtime_ns": now.mtime_ns,
                    f"{log}_bytes": mark.bytes,
                    f"{log}_lines": mark.lines,
                    f"{log}_tail": mark.tail,
                }
            )
        bad = [bulk.as_problem(b) for b in result.bad if b[0] == path]
        if not append:
            problems = [q for q in problems if not q.startswith(path + ":")]
        problems = (problems + bad)[:MAX_PROBLEMS]
        state[f"{log}_bad"] = ((old.get(f"{log}_bad") or 0) if append else 0) + len(bad)
        if log == "metrics":
            new = result.max_step.get(p.run_id)
            prev = old.get("metrics_max_step") if append else None
            state["metrics_max_step"] = max((m for m in (new, prev) if m is not None), default=None)
    if p.problem is not None:
        problems = [p.problem]
    state["problems"] = json.dumps(problems) if problems else None
    return state


def _insert_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: list[dict[str, Any]],
    schema: pa.Schema,
    replace: bool = False,
) -> None:
    """One INSERT of these rows, their columns passed as list parameters.

    A few rows per run: an Arrow scan would import pandas (seconds, once per process).
    """
    if not rows:
        return
    cols = schema.names
    args = ", ".join(
        f"unnest(${i + 1}::{_SQL_TYPES[schema.field(c).type]})" for i, c in enumerate(cols)
    )
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    con.execute(
        f"{verb} INTO {table} ({', '.join(cols)}) SELECT * FROM (SELECT {args})",
        [[r.get(c) for r in rows] for c in cols],
    )


_SQL_TYPES = {
    pa.string(): "VARCHAR[]",
    pa.int64(): "BIGINT[]",
    pa.int32(): "INTEGER[]",
    pa.float64(): "DOUBLE[]",
    pa.timestamp("us"): "TIMESTAMP[]",
}


__all__ = ["BATCH_BYTES", "IngestStats", "apply", "ingest", "ingest_workspace"]
