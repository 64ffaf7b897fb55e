"""The store: migrations, bulk idempotent ingest, rebuild, readers under a running sweep."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ftsweep.rundir import (
    EVALS,
    HEARTBEAT,
    METRICS,
    RESULT,
    SPEC,
    JsonlAppender,
    RunDir,
    atomic_write_json,
)
from ftsweep.store import (
    MIGRATIONS,
    QueryError,
    Store,
    StoreError,
    migrate,
    open_reader,
    rebuild,
    run_query,
    status_rows,
)
from ftsweep.workspace import Workspace

# -- fabricated run directories (also used by test_report) ------------------------------

SKILL = {"base": 0.3, "lora": 0.6, "full": 0.8}


def make_run(
    ws: Workspace,
    experiment: str,
    method: str,
    seed: int,
    params: dict[str, Any],
    state: str = "complete",
    n_examples: int = 30,
    steps: int = 5,
) -> RunDir:
    """Write one run directory like a worker would: spec, logs, then the outcome."""
    run_id = f"{method}-{seed}-" + "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    rd = ws.run_dir(experiment, run_id)
    rd.path.mkdir(parents=True)
    config = {
        "method": method,
        **params,
        "eval": {"primary_metric": "accuracy", "split": "validation"},
    }
    atomic_write_json(
        rd.file(SPEC),
        {
            "run_id": run_id,
            "experiment": experiment,
            "method": method,
            "seed": seed,
            "params": params,
            "config": config,
            "fingerprints": {"data": "d1", "model": "m1"},
            "created_at": 1_700_000_000.0 + seed,
        },
    )
    atomic_write_json(rd.file("provenance.json"), {"versions": {"torch": "2.10"}, "host": "h"})
    rng = random.Random(f"{method}{seed}{sorted(params.items())}")
    skill = SKILL.get(method, 0.5) + 0.02 * sum(len(str(v)) % 3 for v in params.values())
    log = JsonlAppender(rd.file(METRICS))
    for step in range(1, steps + 1):
        if method != "base":
            log.write(
                {
                    "step": step,
                    "epoch": step / steps,
                    "name": "loss",
                    "value": 2.0 / step + rng.random() * 0.1,
                    "time": float(step),
                }
            )
        log.write(
            {
                "step": step,
                "epoch": step / steps,
                "name": "eval_loss",
                "value": 2.5 / step - skill + 1,
                "time": float(step),
            }
        )
    log.close()
    if state == "running":
        atomic_write_json(
            rd.file(HEARTBEAT),
            {"time": 9e12, "pid": 1, "step": 3, "max_steps": steps, "loss": 0.5, "eta_s": 4},
        )
        return rd
    if state == "failed":
        rd.write_failure("CUDA out of memory <b>|x|</b>", log_tail="Traceback...\nOOM")
        return rd
    scores = [float(rng.random() < skill) for _ in range(n_examples)]
    ev = JsonlAppender(rd.file(EVALS))
    for i, s in enumerate(scores):
        ev.write(
            {
                "split": "validation",
                "example_id": f"ex{i}",
                "metric": "accuracy",
                "value": s,
                "prediction": "p",
                "reference": "r",
            }
        )
    ev.close()
    acc = sum(scores) / len(scores)
    atomic_write_json(
        rd.file(RESULT),
        {
            "status": "complete",
            "started_at": 1_700_000_100.0,
            "finished_at": 1_700_000_200.0,
            "trainable_params": 0 if method == "base" else 1000,
            "total_params": 100000,
            "trainable_pct": 0.0 if method == "base" else 1.0,
            "peak_memory_mb": 512.0,
            "wall_time_s": 100.0 + seed,
            "train_time_s": 90.0,
            "setup_time_s": 8.5,
            "attempts": 2,
            "tokens_seen": 5000,
            "tokens_per_s": 55.5,
            "steps": steps,
            "artifact_size_mb": 1.5,
            "eval_split": "validation",
            "final_eval": {"accuracy": acc, "eval_loss": 1 - acc},
            "best_eval": {"accuracy": acc},
            "best_step": steps,
        },
    )
    return rd


def fabricate_experiment(
    ws: Workspace, experiment: str = "grid", methods: tuple[str, ...] = ("base", "lora", "full")
) -> list[RunDir]:
    """3 methods x 2 seeds (lora and full with one varied value each), plus a failure."""
    space = {"base": [{}], "lora": [{"r": 8}, {"r": 16}], "full": [{"lr": 1e-4}, {"lr": 1e-5}]}
    runs = []
    for method in methods:
        for params in space.get(method, [{"alpha": 1}]):
            for seed in (0, 1):
                runs.append(make_run(ws, experiment, method, seed, params))
    runs.append(make_run(ws, experiment, methods[-1], 7, {"lr": 1.0}, state="failed"))
    return runs


def table_contents(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every store table, sorted; ingested_at (wall clock of the ingest) left out."""
    out = {}
    for table in ("runs", "metrics", "evals", "eval_examples"):
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] != "ingested_at"]
        rows = con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
        out[table] = sorted(rows, key=repr)
    return out


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    fabricate_experiment(workspace)
    return workspace


# -- migrations ---------------------------------------------------------------------------


def test_migrations_recorded_and_idempotent(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert migrate(con) == [m.name for m in MIGRATIONS]
    assert migrate(con) == []
    names = [r[0] for r in con.execute("SELECT name FROM migrations ORDER BY name").fetchall()]
    assert names == sorted(m.name for m in MIGRATIONS)
    assert con.execute("SELECT count(*) FROM migrations WHERE applied_at IS NULL").fetchone() == (
        0,
    )
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert {"runs", "metrics", "evals", "eval_examples", "migrations"} <= tables


def test_setup_time_migration_adds_columns_to_an_older_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftsweep.store import migrations as mig

    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    monkeypatch.setattr(mig, "MIGRATIONS", MIGRATIONS[:5])  # a store from before 0006
    mig.migrate(con)
    monkeypatch.setattr(mig, "MIGRATIONS", MIGRATIONS)
    assert mig.migrate(con)[0] == "0006_runs_setup_time_attempts"
    cols = {r[0]: r[1] for r in con.execute("DESCRIBE runs").fetchall()}
    assert cols["setup_time_s"] == "DOUBLE" and cols["attempts"] == "INTEGER"
    assert cols["data_counts"] == "JSON"  # 0007: per-split and per-source record counts


def test_failed_migration_leaves_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftsweep.store import migrations as mig

    def boom(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE half (x INT)")
        raise RuntimeError("boom")

    monkeypatch.setattr(mig, "MIGRATIONS", (*mig.MIGRATIONS, mig.Migration("9999_boom", boom)))
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    with pytest.raises(RuntimeError, match="boom"):
        mig.migrate(con)
    names = {r[0] for r in con.execute("SELECT name FROM migrations").fetchall()}
    assert "9999_boom" not in names and len(names) == len(MIGRATIONS)
    assert "half" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}


# -- ingest -------------------------------------------------------------------------------


def test_ingest_twice_gives_same_tables(ws: Workspace) -> None:
    with ws.lock(), Store.writer(ws) as store:
        first = store.ingest_all()
        before = table_contents(store.con)
        second = store.ingest_all()
        assert table_contents(store.con) == before
    assert first.runs == second.runs == 11 and first.bad_rows == 0
    assert first.metrics == len(before["metrics"]) and first.eval_examples == 10 * 30
    statuses = sorted(r[3] for r in before["runs"])
    assert statuses.count("complete") == 10 and statuses.count("failed") == 1


def test_ingest_values_and_types(ws: Workspace) -> None:
    with ws.lock(), Store.writer(ws) as store:
        store.ingest_all()
        row = store.con.execute(
            "SELECT params->>'r', config->'eval'->>'primary_metric', seed, trainable_params,"
            " typeof(created_at), final_eval->>'accuracy' IS NOT NULL, provenance->>'host',"
            " setup_time_s, train_time_s, attempts"
            " FROM runs WHERE method = 'lora' AND seed = 1 AND params->>'r' = '16'"
        ).fetchone()
        cause = store.con.execute(
            "SELECT failure_cause FROM runs WHERE status = 'failed'"
        ).fetchone()
    assert row == ("16", "accuracy", 1, 1000, "TIMESTAMP", True, "h", 8.5, 90.0, 2)
    assert cause == ("CUDA out of memory <b>|x|</b>",)


def test_reingest_replaces_rows_of_changed_run(ws: Workspace) -> None:
    rd = next(r for r in ws.iter_run_dirs() if r.run_id.startswith("base-0"))
    with ws.lock(), Store.writer(ws) as store:
        store.ingest_all()
        (rd.file(METRICS)).write_text('{"step": 1, "name": "eval_loss", "value": 1.0}\n')
        stats = store.ingest_runs([rd])
        n = store.con.execute(
            "SELECT count(*) FROM metrics WHERE run_id = ?", [rd.run_id]
        ).fetchone()
    assert stats.runs == 1 and n == (1,)


def test_relogged_steps_after_resume_keep_last_value(ws: Workspace) -> None:
    rd = next(iter(ws.iter_run_dirs()))
    with open(rd.file(METRICS), "a", encoding="utf-8") as fh:  # steps 4-5 logged again
        for step in (4, 5):
            fh.write(f'{{"step": {step}, "name": "eval_loss", "value": {step * 10}}}\n')
    with ws.lock(), Store.writer(ws) as store:
        store.ingest_runs([rd])
        rows = store.con.execute(
            "SELECT step, count(*), max(value) FROM metrics WHERE run_id = ? "
            "AND name = 'eval_loss' AND step >= 4 GROUP BY step ORDER BY step",
            [rd.run_id],
        ).fetchall()
    assert rows == [(4, 1, 40.0), (5, 1, 50.0)]


def test_torn_last_line_ignored_and_bad_rows_counted(ws: Workspace) -> None:
    rd = next(iter(ws.iter_run_dirs()))
    good = len(rd.metrics())
    with open(rd.file(METRICS), "a", encoding="utf-8") as fh:
        fh.write('{"step": 99, "name": "loss", "val')  # writer killed mid-record
    with ws.lock(), Store.writer(ws) as store:
        stats = store.ingest_runs([rd])
        n = store.con.execute("SELECT count(*) FROM metrics").fetchone()
    assert n == (good,) and stats.bad_rows == 0
    text = rd.file(METRICS).read_text()
    rd.file(METRICS).write_text('garbage\n{"step": "x", "name": "loss", "value": 1}\n' + text)
    with ws.lock(), Store.writer(ws) as store:
        stats = store.ingest_runs([rd])
    assert stats.bad_rows == 2 and stats.metrics == good
    assert any(":1" in p for p in stats.problems)


def test_nan_and_inf_become_null(ws: Workspace) -> None:
    rd = next(iter(ws.iter_run_dirs()))
    with open(rd.file(METRICS), "a", encoding="utf-8") as fh:
        fh.write('{"step": 50, "name": "loss", "value": NaN}\n')
        fh.write('{"step": 51, "name": "loss", "value": Infinity}\n')
    result = rd.result()
    assert result is not None
    result["final_eval"]["eval_loss"] = float("nan")
    atomic_write_json(rd.file(RESULT), result)
    with ws.lock(), Store.writer(ws) as store:
        store.ingest_runs([rd])
        nulls = store.con.execute(
            "SELECT count(*) FROM metrics WHERE step >= 50 AND value IS NULL"
        ).fetchone()
        ev = store.con.execute(
            "SELECT value FROM evals WHERE run_id = ? AND metric = 'eval_loss'", [rd.run_id]
        ).fetchone()
        fe = store.con.execute(
            "SELECT final_eval->'eval_loss' FROM runs WHERE run_id = ?", [rd.run_id]
        ).fetchone()
    assert nulls == (2,) and ev == (None,) and fe == ("null",)


def test_rebuild_equals_incremental_ingest(ws: Workspace) -> None:
    runs = list(ws.iter_run_dirs())
    with ws.lock(), Store.writer(ws) as store:
        for rd in runs:  # one at a time, as a sweep would
            store.ingest_runs([rd])
        incremental = table_contents(store.con)
    stats = rebuild(ws)
    assert stats.runs == len(runs)
    con = duckdb.connect(str(ws.store_path), read_only=True)
    assert table_contents(con) == incremental
    con.close()


def test_writer_requires_lock(ws: Workspace) -> None:
    with pytest.raises(StoreError, match="lock"):
        with Store.writer(ws):
            pass


def test_writer_publishes_snapshot(ws: Workspace) -> None:
    with ws.lock(), Store.writer(ws) as store:
        store.ingest_all()
    con = duckdb.connect(str(ws.snapshot_path), read_only=True)
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (11,)
    con.close()


# -- readers while a sweep runs -----------------------------------------------------------

SWEEP = textwrap.dedent("""
    import sys
    from ftsweep.store import Store
    from ftsweep.workspace import Workspace
    ws = Workspace(sys.argv[1])
    with ws.lock(), Store.writer(ws) as store:
        if sys.argv[2] == "publish":
            store.ingest_all()
            store.publish_snapshot()
        store.con.execute("SELECT count(*) FROM runs").fetchall()
        print("writing", flush=True)
        sys.stdin.readline()
""")


def _sweep(ws: Workspace, mode: str) -> subprocess.Popen[str]:
    """A real second process holding the lock and the store open read-write."""
    child = subprocess.Popen(
        [sys.executable, "-c", SWEEP, str(ws.root), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    return child


@pytest.mark.parametrize("mode", ["publish", "no-snapshot"])
def test_reader_works_while_sweep_holds_lock(ws: Workspace, mode: str) -> None:
    ws.root.mkdir(parents=True, exist_ok=True)
    child = _sweep(ws, mode)
    try:
        assert ws.try_lock() is None
        con = open_reader(ws)
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (11,)
        con.close()
        cols, rows = run_query(ws, "SELECT method, count(*) FROM runs GROUP BY 1 ORDER BY 1")
        assert cols[0] == "method" and rows[0] == ("base", 2)
        assert len(status_rows(ws)) == 11
    finally:
        child.communicate("\n", timeout=60)
    assert child.returncode == 0


def test_reader_refreshes_when_idle(ws: Workspace) -> None:
    con = open_reader(ws)
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (11,)
    con.close()
    assert ws.store_path.exists() and ws.snapshot_path.exists()
    make_run(ws, "grid", "lora", 5, {"r": 32})
    assert run_query(ws, "SELECT count(*) FROM runs")[1] == [(12,)]
    assert not ws.holds_lock()


# -- user SQL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql,why",
    [
        ("CREATE TABLE x (a INT)", "read-only"),
        ("INSERT INTO runs (run_id) VALUES ('x')", "read-only"),
        ("DELETE FROM runs", "read-only"),
        ("COPY runs TO '{tmp}/out.csv'", "file and network access is disabled"),
        ("SELECT * FROM read_csv('/etc/passwd')", "file and network access is disabled"),
        ("ATTACH '{tmp}/other.duckdb' AS o", "file and network access is disabled"),
        ("SET enable_external_access = true", "locked"),
    ],
)
def test_query_rejects_writes_and_file_access(
    ws: Workspace, tmp_path: Path, sql: str, why: str
) -> None:
    with pytest.raises(QueryError, match=why):
        run_query(ws, sql.format(tmp=tmp_path))
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_query_select(ws: Workspace) -> None:
    cols, rows = run_query(ws, "SELECT run_id, status FROM runs WHERE status = 'failed'")
    assert cols == ["run_id", "status"] and len(rows) == 1


def test_status_reads_live_heartbeat(ws: Workspace) -> None:
    make_run(ws, "other", "lora", 3, {"r": 4}, state="running")
    rows = status_rows(ws, "other")
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "running" and (row["step"], row["max_steps"]) == (3, 5)
    done = [r for r in status_rows(ws, "grid") if r["status"] == "complete"]
    assert done and all(r["primary_metric"] == "accuracy" for r in done)
    assert all(isinstance(r["primary_value"], float) for r in done)
    failed = [r for r in status_rows(ws) if r["status"] == "failed"]
    assert failed[0]["failure_cause"].startswith("CUDA out of memory")
