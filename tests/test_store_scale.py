"""The store at scale, at a small size: incremental ingest == rebuild, row for row.

Uses the generator of benchmarks/store_scale.py (the exact run-directory format), then
changes the workspace the ways a sweep and its users do: new runs, a run growing while
it trains (with a torn last line), finishing, re-logged steps after a resume, a log
trimmed and replaced on resume, a hand-deleted run directory, bad lines. After each
change the incrementally maintained store must equal a store built from scratch, and
both must equal an independent Python reading of the logs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

from ftsweep.rundir import HEARTBEAT, METRICS, RESULT, RunDir, atomic_write_json
from ftsweep.store import Store, bulk, open_reader, open_snapshot, run_query
from ftsweep.store.snapshot import MAX_GENERATIONS, generations, published
from ftsweep.store.store import _build_file
from ftsweep.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("store_scale", ROOT / "benchmarks/store_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["store_scale"] = module  # dataclasses needs the module registered
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
SIZE = bench.Size(
    runs=12, steps=30, metrics=3, examples=5, experiments=2, fail_every=5, resume_every=4
)


def contents(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every run-derived table, sorted; ingested_at (the ingest's wall clock) left out."""
    out = {}
    for table in ("runs", "metrics", "evals", "eval_examples"):
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] != "ingested_at"]
        out[table] = sorted(
            con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr
        )
    return out


def fresh(ws: Workspace, tmp: Path) -> dict[str, list[tuple[Any, ...]]]:
    path = tmp / f"fresh-{time.monotonic_ns()}.duckdb"
    _build_file(path, ws.runs_dir)
    con = duckdb.connect(str(path), read_only=True)
    try:
        return contents(con)
    finally:
        con.close()


def python_metrics(ws: Workspace) -> list[tuple[Any, ...]]:
    """The metrics table as the old line-by-line Python reader defined it (an oracle)."""
    out = []
    for rd in ws.iter_run_dirs():
        rows: dict[tuple[int, str], tuple[Any, ...]] = {}
        if not rd.file(METRICS).exists():
            continue
        run_id = rd.spec()["run_id"]
        for line in rd.file(METRICS).read_text(errors="replace").splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if (
                not isinstance(r, dict)
                or not isinstance(r.get("step"), int)
                or not isinstance(r.get("name"), str)
                or not isinstance(r.get("value"), float)
            ):
                continue

            def fin(x: Any) -> float | None:
                return x if isinstance(x, float) and math.isfinite(x) else None

            rows.pop((r["step"], r["name"]), None)
            rows[(r["step"], r["name"])] = (
                run_id,
                r["step"],
                fin(r.get("epoch")),
                r["name"],
                fin(r["value"]),
                fin(r.get("time")),
            )
        out.extend(rows.values())
    return sorted(out, key=repr)


def append(rd: RunDir, text: str) -> None:
    with open(rd.file(METRICS), "a", encoding="utf-8") as fh:
        fh.write(text)


def metric_line(step: int, name: str = "loss", value: float = 0.5) -> str:
    return (
        json.dumps(
            {"epoch": step / 100, "name": name, "step": step, "time": 1.0 * step, "value": value},
            sort_keys=True,
        )
        + "\n"
    )


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    bench.generate(workspace.root, SIZE)
    return workspace


def check(ws: Workspace, store: Store, tmp: Path) -> dict[str, list[tuple[Any, ...]]]:
    got = contents(store.con)
    assert got == fresh(ws, tmp)
    assert got["metrics"] == python_metrics(ws)
    return got


@pytest.fixture(params=["parameters", "arrow"])
def log_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small batches of log text go to DuckDB as query parameters, big ones through Arrow:
    run both at this size."""
    if request.param == "arrow":
        monkeypatch.setattr(bulk, "ARROW_ABOVE", 0)
    return str(request.param)


def test_incremental_ingest_equals_rebuild_through_a_sweeps_life(
    ws: Workspace, tmp_path: Path, log_path: str
) -> None:
    with ws.lock():
        with Store.writer(ws) as store:
            first = store.ingest_all()
            got = check(ws, store, tmp_path)
            assert first.runs == first.updated == SIZE.runs and first.bad_rows == 0
            assert len(got["runs"]) == SIZE.runs
            assert store.ingest_all().updated == 0  # settled: nothing read again

        # new runs, and one in flight: a fresh heartbeat, a torn last line
        more = dataclasses.replace(SIZE, runs=SIZE.runs + 3)
        bench.generate(ws.root, more, start=SIZE.runs)
        live = RunDir(Path(bench.write_run(ws.root, SIZE, "scale-live", 100)))
        for name in ("result.json", "evals.jsonl", "provenance.json", "launch.json"):
            live.file(name).unlink()
        atomic_write_json(live.file(HEARTBEAT), {"time": time.time(), "pid": 1, "step": 5})
        text = live.file(METRICS).read_text()
        live.file(METRICS).write_text(text[: len(text) // 2])  # cut mid-line
        with Store.writer(ws) as store:
            stats = store.ingest_all()
            assert stats.updated == 4
            check(ws, store, tmp_path)
            status = store.con.execute(
                "SELECT status FROM runs WHERE run_id = ?", [live.run_id]
            ).fetchone()
            assert status == ("running",)

        # it grows (only the new bytes are read), re-logs steps, then finishes
        with Store.writer(ws) as store:
            append(live, text[len(text) // 2 :])
            stats = store.ingest_runs([live])
            assert 0 < stats.metrics < SIZE.steps * SIZE.metrics
            append(live, metric_line(2, "m0", 7.0) + metric_line(3, "loss", float("nan")))
            store.ingest_runs([live])
            atomic_write_json(live.file(RESULT), {"status": "complete", "final_eval": {"x": 1.0}})
            store.ingest_runs([live])
            got = check(ws, store, tmp_path)
            assert ("complete",) == store.con.execute(
                "SELECT status FROM runs WHERE run_id = ?", [live.run_id]
            ).fetchone()
            assert (live.run_id, 2, 0.02, "m0", 7.0, 2.0) in got["metrics"]

        # a resume trims the log and replaces the file; a user deletes a run directory
        victim, trimmed = sorted(ws.iter_run_dirs(), key=lambda r: r.run_id)[:2]
        shutil.rmtree(victim.path)
        lines = trimmed.file(METRICS).read_text().splitlines(keepends=True)
        tmp = trimmed.file(METRICS + ".tmp")
        tmp.write_text("".join(lines[:10]))
        os.replace(tmp, trimmed.file(METRICS))
        with Store.writer(ws) as store:
            stats = store.ingest_all()
            assert stats.deleted == 1
            got = check(ws, store, tmp_path)
            assert victim.run_id not in {r[0] for r in got["runs"]}
            assert victim.run_id not in {r[0] for r in got["metrics"]}
            assert sum(1 for r in got["metrics"] if r[0] == trimmed.run_id) == 10

        # bad lines are counted and named once, and kept in the run's watermark
        append(trimmed, 'garbage\n{"step": "x", "name": "loss", "value": 1}\n[1]\n\n')
        with Store.writer(ws) as store:
            stats = store.ingest_all()
            assert stats.bad_rows == 3, stats.problems
            assert any(p.endswith(":11: not JSON (Expecting value)") for p in stats.problems)
            assert any(":13: not a JSON object" in p for p in stats.problems)
            assert store.ingest_all().bad_rows == 0  # not re-read, not re-reported
            kept = store.con.execute(
                "SELECT metrics_bad FROM _ingest_state WHERE run_id = ?", [trimmed.run_id]
            ).fetchone()
            assert kept == (3,)
            check(ws, store, tmp_path)


def test_rewritten_log_of_same_size_and_inode_is_read_again(ws: Workspace, tmp_path: Path) -> None:
    rd = next(iter(ws.iter_run_dirs()))
    with ws.lock(), Store.writer(ws) as store:
        store.ingest_all()
        data = bytearray(rd.file(METRICS).read_bytes())
        data[-3] = ord("9") if data[-3] != ord("9") else ord("8")  # last line, same length
        with open(rd.file(METRICS), "r+b") as fh:  # in place: same inode, same size
            fh.write(data)
        os.utime(rd.file(METRICS), ns=(time.time_ns(), time.time_ns() + 10**9))
        assert store.ingest_all().updated == 1
        check(ws, store, tmp_path)


def test_not_utf8_is_read_with_replacement(ws: Workspace, tmp_path: Path, log_path: str) -> None:
    rd = next(iter(ws.iter_run_dirs()))
    with open(rd.file("evals.jsonl"), "ab") as fh:
        fh.write(
            b'{"split": "test", "example_id": "x", "metric": "em", "value": 1.0, '
            b'"prediction": "caf\xe9", "reference": "r"}\n'
        )
    with ws.lock(), Store.writer(ws) as store:
        assert store.ingest_all().bad_rows == 0
        pred = store.con.execute("SELECT prediction FROM eval_examples WHERE example_id = 'x'")
        assert pred.fetchone() == ("caf\ufffd",)
        assert contents(store.con) == fresh(ws, tmp_path)


def test_readers_do_not_reingest_a_settled_workspace(ws: Workspace) -> None:
    run_query(ws, "select 1")  # first read: catches up and publishes
    store_mtime = ws.store_path.stat().st_mtime_ns
    target = published(ws)
    for _ in range(3):
        con, fresh_ = open_snapshot(ws)
        con.close()
        assert fresh_.note() is None
    assert run_query(ws, "select count(*) from runs")[1] == [(SIZE.runs,)]
    assert ws.store_path.stat().st_mtime_ns == store_mtime and published(ws) == target


def test_reader_catches_up_incrementally_when_idle(ws: Workspace) -> None:
    run_query(ws, "select 1")
    bench.write_run(ws.root, SIZE, "scale-00", 500)
    assert run_query(ws, "select count(*) from runs")[1] == [(SIZE.runs + 1,)]


SWEEP = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import store_scale as bench
    from pathlib import Path
    from ftsweep.rundir import RunDir
    from ftsweep.store import Store
    from ftsweep.workspace import Workspace
    ws = Workspace(sys.argv[1])
    size = bench.Size(runs=1, steps=20, metrics=2, examples=3, experiments=1,
                      fail_every=10**9, resume_every=10**9)
    written = 0
    with ws.lock():
        with Store.writer(ws) as store:
            store.ingest_all()
        print("writing", flush=True)
        while not Path(sys.argv[1], "stop").exists() and written < 500:
            rd = RunDir(bench.write_run(ws.root, size, "sweep", 1000 + written))
            with Store.writer(ws) as store:  # as the launcher does after each run
                store.ingest_runs([rd])
            written += 1
    print(written, flush=True)
""")

READERS = textwrap.dedent("""
    import sys, threading, time
    from ftsweep.store import open_reader
    from ftsweep.workspace import Workspace
    ws, n, per_run, base = Workspace(sys.argv[1]), int(sys.argv[2]), 40, int(sys.argv[3])
    errors, seen = [], set()
    deadline = time.monotonic() + 300
    def read():
        # at least n reads each, and on until runs were seen being added
        done = 0
        while done < n or (len(seen) < 2 and time.monotonic() < deadline):
            done += 1
            try:
                con = open_reader(ws)
                try:
                    runs, rows = con.execute(
                        "SELECT (SELECT count(*) FROM runs WHERE experiment = 'sweep'), "
                        "(SELECT count(*) FROM metrics m JOIN runs r USING (run_id) "
                        " WHERE r.experiment = 'sweep')").fetchone()
                    total = con.execute("SELECT count(*) FROM runs").fetchone()[0]
                finally:
                    con.close()
                if rows != per_run * runs or total != base + runs:
                    errors.append(f"inconsistent snapshot: {runs} runs, {rows} rows, {total}")
                seen.add(runs)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    threads = [threading.Thread(target=read) for _ in range(25)]
    for t in threads: t.start()
    for t in threads: t.join()
    print()
    print("RESULT", len(errors), sorted(seen), errors[:3])
""")


def test_a_hundred_concurrent_readers_during_a_sweep_see_no_error(ws: Workspace) -> None:
    """4 processes x 25 threads read while another process ingests and publishes."""
    run_query(ws, "select 1")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sweep = subprocess.Popen(
        [sys.executable, "-c", SWEEP, str(ws.root), str(ROOT / "benchmarks")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert sweep.stdout is not None and sweep.stdout.readline().strip() == "writing"
    try:
        readers = [
            subprocess.Popen(
                [sys.executable, "-c", READERS, str(ws.root), "4", str(SIZE.runs)],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(4)
        ]
        outs = [r.communicate(timeout=600)[0] for r in readers]
    finally:
        (ws.root / "stop").touch()
        written = int(sweep.communicate(timeout=600)[0].split()[-1])
    assert sweep.returncode == 0
    seen: set[int] = set()
    for out in outs:  # "RESULT <errors> [<sweep runs seen>, ...] [<first errors>]"
        result = out.rsplit("RESULT ", 1)[-1]
        assert result.split(" ", 1)[0] == "0", out[-2000:]
        counts = result.split("[", 1)[1].split("]", 1)[0]
        seen |= {int(c) for c in counts.split(",") if c.strip()}
    assert len(seen) >= 2, f"the readers saw no run being added ({seen}); the test proves nothing"
    assert len(generations(ws)) <= MAX_GENERATIONS + 1
    con = open_reader(ws)
    assert con.execute("SELECT count(*) FROM runs WHERE experiment = 'sweep'").fetchone() == (
        written,
    )
    con.close()


def test_status_imports_neither_duckdb_nor_pyarrow(ws: Workspace) -> None:
    code = (
        "import sys; from ftsweep.cli import main; "
        f"rc = main(['--workspace', {str(ws.root)!r}, 'status']); "
        "print(rc, 'duckdb' in sys.modules, 'pyarrow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "0 False False"


def test_stale_snapshot_under_a_sweep_says_how_far_behind(ws: Workspace) -> None:
    run_query(ws, "select 1")
    bench.write_run(ws.root, SIZE, "scale-00", 600)
    with ws.lock():  # as a sweep would hold it
        con, freshness = open_snapshot(ws)
        try:
            assert con.execute("SELECT count(*) FROM runs").fetchone() == (SIZE.runs,)
        finally:
            con.close()
    note = freshness.note()
    assert note is not None and "1 new" in note and "lock" in note


def test_publish_updates_a_generation_in_place_and_skips_held_ones(ws: Workspace) -> None:
    with ws.lock():
        for _ in range(4):
            with Store.writer(ws) as store:
                store.ingest_all()
        gens = generations(ws)
        assert 2 <= len(gens) <= MAX_GENERATIONS
        held = [duckdb.connect(str(g), read_only=True) for g in gens]  # readers on all
        try:
            bench.write_run(ws.root, SIZE, "scale-00", 700)
            with Store.writer(ws) as store:
                store.ingest_all()
            # every generation was held: a new one was written; the readers saw no change
            assert held[0].execute("SELECT count(*) FROM runs").fetchone() == (SIZE.runs,)
        finally:
            for con in held:
                con.close()
    con = open_reader(ws)
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (SIZE.runs + 1,)
    con.close()


def test_unreadable_new_run_is_reported_once_and_does_not_keep_readers_behind(
    ws: Workspace,
) -> None:
    run_query(ws, "select 1")
    rd = RunDir(Path(bench.write_run(ws.root, SIZE, "scale-00", 800)))
    good = rd.file("spec.json").read_text()
    atomic_write_json(rd.file("spec.json"), {"run_id": 5})  # readable JSON ...
    rd.file("spec.json").write_text("{not json")  # ... then not
    with ws.lock(), Store.writer(ws) as store:
        stats = store.ingest_all()
        assert stats.bad_rows == 1 and "run skipped" in stats.problems[0]
        assert store.ingest_all().bad_rows == 0  # recorded, not re-read
    con, freshness = open_snapshot(ws)
    con.close()
    assert freshness.note() is None
    atomic_write_json(rd.file("spec.json"), json.loads(good))  # fixed by hand
    assert run_query(ws, "select count(*) from runs")[1] == [(SIZE.runs + 1,)]
