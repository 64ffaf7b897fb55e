"""Failures that explain themselves (issue 8, items 12-17): killed workers, corrupt results,
damaged stores, a full disk, retries, a busy workspace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import experiment_yaml
from test_launcher_fake import MATRIX, FakeExecutor

from ftsweep.cli import main as cli_main
from ftsweep.config.load import load_experiment
from ftsweep.config.schema import LaunchBlock
from ftsweep.launch.exits import exit_cause, signal_in_log, signal_of
from ftsweep.launch.launcher import launch, worker_command
from ftsweep.plan import Action, plan
from ftsweep.rundir import RESULT, RunDir, RunState
from ftsweep.store import run_query, status_rows
from ftsweep.workspace import Workspace

# -- item 14: a worker killed by a signal is named, not "exit code 1" -----------------


def test_exit_statuses_that_stand_for_signals_are_named() -> None:
    assert signal_of(-9) == signal.SIGKILL and signal_of(137) == signal.SIGKILL
    assert signal_of(-11) == signal.SIGSEGV and signal_of(1) is None and signal_of(0) is None
    assert "SIGKILL" in exit_cause(-9) and "likely the out-of-memory killer" in exit_cause(-9)
    assert "SIGSEGV" in exit_cause(139) and "out-of-memory" not in exit_cause(139)
    assert exit_cause(3) == "worker exited with code 3"
    # `accelerate launch` exits 1; the signal is only in its output.
    called = "CalledProcessError: Command '[...]' died with <Signals.SIGKILL: 9>."
    assert "SIGKILL" in exit_cause(1, called)
    elastic = "exitcode  : -11 (pid: 123)\n"
    assert signal_in_log(elastic) == signal.SIGSEGV
    assert exit_cause(1, "Traceback ... ValueError: bad") == "worker exited with code 1"


def test_a_worker_killed_under_accelerate_launch_is_reported_with_its_signal(
    tmp_path: Path,
) -> None:
    """The real `accelerate launch` the launcher uses, around a process that is SIGKILLed."""
    suicide = tmp_path / "die.py"
    suicide.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    argv = worker_command(tmp_path, LaunchBlock(), tmp_path, cuda=False)
    argv = argv[: argv.index("-m", 3)] + [str(suicide)]
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert out.returncode != 0
    cause = exit_cause(out.returncode, out.stdout + out.stderr)
    assert "SIGKILL" in cause and "out-of-memory" in cause, (out.returncode, out.stderr[-2000:])


# -- item 15: a corrupt result.json is a failed run that relaunch trains again --------


def test_corrupt_result_is_failed_and_relaunch_retrains_it_keeping_the_file(write_exp, tmp_path):
    exp = load_experiment(write_exp(experiment_yaml("c", matrix=MATRIX)))
    ws = Workspace(tmp_path / "ws")
    assert launch(exp, ws, executor=FakeExecutor()).exit_code == 0
    victim = ws.run_dir("c", exp.runs[0].run_id)
    victim.file(RESULT).write_text('{"final_eval": {"exact_ma')  # torn
    assert victim.read_state() == RunState.FAILED
    row = next(r for r in status_rows(ws, "c") if r["run_id"] == victim.run_id)
    assert row["status"] == "failed" and "result.json is corrupt" in row["failure_cause"]
    actions = {i.run.run_id: i.action for i in plan(exp, ws)}
    assert actions[victim.run_id] == Action.RELAUNCH  # no --retry-failed needed
    assert sum(a == Action.SKIP for a in actions.values()) == len(actions) - 1

    ex = FakeExecutor()
    summary = launch(exp, ws, executor=ex)
    assert ex.submitted == [victim.run_id] and summary.exit_code == 0
    assert victim.read_state() == RunState.COMPLETE
    kept = victim.file("attempt-0") / RESULT
    assert kept.read_text() == '{"final_eval": {"exact_ma'


# -- item 16: a killed worker is retried from its checkpoint; retrying keeps checkpoints


class KillingExecutor(FakeExecutor):
    """Like FakeExecutor, but a run's first attempts end with the given exit statuses,
    after leaving a checkpoint behind (a worker killed mid-training)."""

    def __init__(self, deaths: dict[str, list[int]], own_failure: bool | str = False):
        super().__init__(capacity=1)
        self.deaths = deaths
        self.own_failure = own_failure
        self.had_checkpoint: list[bool] = []  # per submit: was the checkpoint still there

    def submit(self, job):
        ckpt = RunDir(job.log_path.parent).file("checkpoints") / "checkpoint-3"
        self.had_checkpoint.append((ckpt / "trainer_state.json").is_file())
        super().submit(job)

    def poll(self):
        done = []
        for job in list(self.jobs):
            codes = self.deaths.get(job.run_id)
            if not codes:
                continue
            rd = RunDir(job.log_path.parent)
            ckpt = rd.file("checkpoints") / "checkpoint-3"
            ckpt.mkdir(parents=True, exist_ok=True)
            (ckpt / "trainer_state.json").write_text("{}")
            if self.own_failure:
                cause = (
                    self.own_failure
                    if isinstance(self.own_failure, str)
                    else "ValueError: the worker's own error"
                )
                rd.write_failure(cause, "Traceback ...")
            self.jobs.remove(job)
            done.append((job, codes.pop(0)))
        return done + super().poll()


ONE_RUN = "matrix:\n  method:\n    - {name: lora, r: [4], training.lr: [1.0e-3]}\n"


def _one_run(write_exp, launch_block: str):
    exp = load_experiment(write_exp(experiment_yaml("k", matrix=ONE_RUN, launch=launch_block)))
    return exp, exp.runs[0].run_id


def test_a_killed_worker_is_retried_from_its_checkpoint(write_exp, tmp_path, capsys):
    exp, run_id = _one_run(write_exp, "{retry_backoff_s: 0}")
    assert exp.spec.launch.max_retries == 1  # the default
    ws = Workspace(tmp_path / "ws")
    ex = KillingExecutor({run_id: [-9]})
    summary = launch(exp, ws, executor=ex)
    assert summary.exit_code == 0 and summary.complete == [run_id]
    assert ex.submitted == [run_id, run_id] and ex.had_checkpoint == [False, True]
    rd = ws.run_dir("k", run_id)
    kept = json.loads((rd.file("attempt-0") / "failure.json").read_text())
    assert "SIGKILL" in kept["cause"] and kept["retryable"] is True
    assert "retry 1 of 1" in capsys.readouterr().out


def test_retries_stop_at_max_retries_and_retry_failed_keeps_the_checkpoint(write_exp, tmp_path):
    exp, run_id = _one_run(write_exp, "{retry_backoff_s: 0, max_retries: 1}")
    ws = Workspace(tmp_path / "ws")
    ex = KillingExecutor({run_id: [-9, -11]})
    summary = launch(exp, ws, executor=ex)
    assert summary.failed == [run_id] and len(ex.submitted) == 2
    assert "SIGSEGV" in ws.run_dir("k", run_id).failure()["cause"]
    ex = KillingExecutor({})
    summary = launch(exp, ws, retry_failed=True, executor=ex)
    assert summary.exit_code == 0 and ex.had_checkpoint == [True]


def test_own_failures_and_stop_requests_are_not_retried(write_exp, tmp_path):
    exp, run_id = _one_run(write_exp, "{retry_backoff_s: 0, max_retries: 3}")
    ws = Workspace(tmp_path / "ws")
    ex = KillingExecutor({run_id: [1]}, own_failure=True)
    assert launch(exp, ws, executor=ex).failed == [run_id] and len(ex.submitted) == 1
    exp, run_id = _one_run(write_exp, "{retry_backoff_s: 0, max_retries: 3}")
    ws = Workspace(tmp_path / "ws2")
    ex = KillingExecutor({run_id: [-int(signal.SIGTERM)]})
    assert launch(exp, ws, executor=ex).failed == [run_id] and len(ex.submitted) == 1
    assert ws.run_dir("k", run_id).failure()["retryable"] is False


# -- item 12: a damaged store: launch sets it aside and rebuilds; readers say how -----


def _swept(write_exp, tmp_path, name: str = "d"):
    exp = load_experiment(write_exp(experiment_yaml(name, matrix=MATRIX)))
    ws = Workspace(tmp_path / "ws")
    assert launch(exp, ws, executor=FakeExecutor()).exit_code == 0
    return exp, ws


def test_launch_moves_a_damaged_store_aside_and_rebuilds_it(write_exp, tmp_path, capsys):
    exp, ws = _swept(write_exp, tmp_path)
    garbage = b"not a database at all\n" * 100
    ws.store_path.write_bytes(garbage)
    capsys.readouterr()
    summary = launch(exp, ws, executor=FakeExecutor())
    assert summary.exit_code == 0
    said = " ".join(" ".join(capsys.readouterr()).split())  # rich wraps lines
    assert "damaged" in said and "rebuilt it from the run directories" in said
    (aside,) = ws.root.glob("store.damaged-*.duckdb")
    assert aside.read_bytes() == garbage  # kept for inspection
    assert run_query(ws, "select count(*) from runs")[1] == [(4,)]


def test_readers_say_the_store_is_damaged_and_how_to_rebuild(write_exp, tmp_path, capsys):
    exp, ws = _swept(write_exp, tmp_path)
    ws.store_path.write_bytes(b"\0" * 4096)
    Path(os.path.realpath(ws.snapshot_path)).write_bytes(b"garbage" * 100)
    capsys.readouterr()
    for argv in (["query", "select count(*) from runs"], ["report"]):
        assert cli_main(["--workspace", str(ws.root), *argv]) == 2
        err = capsys.readouterr().err
        assert "damaged" in err and "ftsweep ingest --rebuild" in err
        assert "Traceback" not in err
    assert cli_main(["--workspace", str(ws.root), "status"]) == 0  # run directories only
    assert cli_main(["--workspace", str(ws.root), "ingest", "--rebuild"]) == 0
    assert run_query(ws, "select count(*) from runs")[1] == [(4,)]


# -- item 13: a full disk: the launcher survives, names it, keeps what it wrote --------


def test_a_full_disk_is_named_survived_and_a_relaunch_catches_up(
    write_exp, tmp_path, monkeypatch, capsys
):
    import duckdb

    from ftsweep.store import ingest as ingest_mod

    exp = load_experiment(write_exp(experiment_yaml("f", matrix=MATRIX)))
    ws = Workspace(tmp_path / "ws")
    real = ingest_mod._apply_batch
    full = {"on": True}

    def apply_batch(con, *args, **kwargs):
        if full["on"]:
            # What DuckDB does on ENOSPC: the transaction is already gone, so our
            # ROLLBACK fails with "cannot rollback", which used to hide the cause.
            con.execute("ROLLBACK")
            raise duckdb.IOException(
                'IO Error: Could not write file "store.duckdb.wal": No space left on device'
            )
        return real(con, *args, **kwargs)

    monkeypatch.setattr(ingest_mod, "_apply_batch", apply_batch)
    summary = launch(exp, ws, executor=FakeExecutor())
    assert len(summary.complete) == 4 and summary.exit_code == 1
    assert summary.store_problem and "No space left on device" in summary.store_problem
    out = " ".join(" ".join(capsys.readouterr()).split())
    assert "disk full" in out and "cannot rollback" not in out
    assert all(ws.run_dir("f", r.run_id).read_state() == RunState.COMPLETE for r in exp.runs)

    full["on"] = False  # space freed
    ex = FakeExecutor()
    summary = launch(exp, ws, executor=ex)
    assert summary.exit_code == 0 and ex.submitted == []
    assert run_query(ws, "select count(*) from runs where status = 'complete'")[1] == [(4,)]


def test_a_full_disk_while_recording_a_run_leaves_it_lost_for_the_next_launch(
    write_exp, tmp_path, monkeypatch
):
    import errno

    from ftsweep.launch import settle as settle_mod

    exp = load_experiment(write_exp(experiment_yaml("g", matrix=ONE_RUN)))
    ws = Workspace(tmp_path / "ws")

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(settle_mod, "_record_process", no_room)
    summary = launch(exp, ws, executor=KillingExecutor({exp.runs[0].run_id: [-9]}))
    assert summary.lost == [exp.runs[0].run_id] and summary.exit_code == 1
    monkeypatch.undo()
    assert launch(exp, ws, executor=FakeExecutor()).exit_code == 0


def test_a_run_failed_by_a_full_disk_is_trained_again_by_the_next_launch(write_exp, tmp_path):
    exp, run_id = _one_run(write_exp, "{retry_backoff_s: 0}")
    ws = Workspace(tmp_path / "ws")
    full = "OSError: [Errno 28] No space left on device: 'checkpoints/checkpoint-3'"
    summary = launch(exp, ws, executor=KillingExecutor({run_id: [1]}, own_failure=full))
    assert summary.failed == [run_id]  # not retried while the disk is still full
    assert ws.run_dir("k", run_id).failure()["disk_full"] is True
    (item,) = plan(exp, ws)
    assert item.action == Action.RELAUNCH  # space freed: no --retry-failed needed
    ex = KillingExecutor({})
    assert launch(exp, ws, executor=ex).exit_code == 0 and ex.had_checkpoint == [True]


# -- item 17: a busy workspace says whom it waits for; status sees a dead worker at once


def test_launch_on_a_busy_workspace_says_at_once_whom_it_waits_for(write_exp, tmp_path, capsys):
    import socket
    import time

    import pytest
    from test_workspace import _hold_lock_in_child

    from ftsweep.workspace import WorkspaceLocked

    exp = load_experiment(write_exp(experiment_yaml("b", matrix=ONE_RUN)))
    ws = Workspace(tmp_path / "ws")
    child = _hold_lock_in_child(ws.root)
    try:
        holder = ws.lock_holder()
        assert holder and holder["pid"] == child.pid and holder["host"] == socket.gethostname()
        assert abs(holder["since"] - time.time()) < 60 and holder["command"]
        capsys.readouterr()
        with pytest.raises(WorkspaceLocked, match=rf"pid {child.pid} on .* since "):
            launch(exp, ws, executor=FakeExecutor(), lock_wait_s=0.5)
        said = " ".join(" ".join(capsys.readouterr()).split())
        assert "waiting up to 0.5 s for the workspace lock" in said and str(child.pid) in said
        t0 = time.monotonic()
        code = cli_main(["--workspace", str(ws.root), "launch", "--no-wait", str(exp.file)])
        err = " ".join(capsys.readouterr().err.split())
        assert code == 1 and time.monotonic() - t0 < 30 and f"pid {child.pid}" in err
        assert "waiting" not in err
    finally:
        child.communicate("\n", timeout=30)


def test_status_shows_a_dead_local_worker_as_lost_at_once(tmp_path):
    import socket
    import time

    from ftsweep.rundir import HEARTBEAT, SPEC, atomic_write_json

    ws = Workspace(tmp_path / "ws")
    rd = ws.run_dir("s", "r1")
    rd.path.mkdir(parents=True)
    atomic_write_json(rd.file(SPEC), {"run_id": "r1", "experiment": "s", "method": "lora"})
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    here = socket.gethostname()
    atomic_write_json(rd.file(HEARTBEAT), {"time": time.time(), "pid": gone.pid, "host": here})
    assert status_rows(ws)[0]["status"] == "lost"
    atomic_write_json(rd.file(HEARTBEAT), {"time": time.time(), "pid": os.getpid(), "host": here})
    assert status_rows(ws)[0]["status"] == "running"
    # Another host's worker: only its heartbeat's age tells, by the experiment's own limit.
    old = time.time() - 30
    atomic_write_json(
        rd.file(HEARTBEAT), {"time": old, "pid": 1, "host": "elsewhere", "stale_after_s": 10.0}
    )
    assert status_rows(ws)[0]["status"] == "lost"
    atomic_write_json(
        rd.file(HEARTBEAT), {"time": old, "pid": 1, "host": "elsewhere", "stale_after_s": 120.0}
    )
    assert status_rows(ws)[0]["status"] == "running"


def test_workers_are_told_the_experiments_heartbeat_timeout(tmp_path, monkeypatch):
    from ftsweep.launch.launcher import worker_env
    from ftsweep.rundir import HEARTBEAT, STALE_AFTER_ENV
    from ftsweep.worker.callbacks import Heartbeat, Progress

    env = worker_env(LaunchBlock(heartbeat_timeout_s=240), offline=True)
    assert env[STALE_AFTER_ENV] == "240.0"
    rd = RunDir(tmp_path)
    monkeypatch.setenv(STALE_AFTER_ENV, env[STALE_AFTER_ENV])
    Heartbeat(rd, Progress()).beat()
    assert json.loads(rd.file(HEARTBEAT).read_text())["stale_after_s"] == 240.0


@pytest.mark.slow
def test_a_real_worker_killed_with_sigkill_is_retried_from_its_checkpoint(write_exp, tmp_path):
    """End to end: the launcher lives, its worker is SIGKILLed mid-training (as the OOM
    killer would); the run resumes from its checkpoint and completes, the kill named."""
    import time

    from conftest import REPO

    from ftsweep.rundir import read_jsonl

    text = experiment_yaml(
        "oom",
        matrix="matrix:\n  method: [{name: lora, r: 4}]\n",
        max_steps=120,
        launch="{threads_per_process: 1, retry_backoff_s: 0}",
    )
    exp_file = write_exp(
        text.replace("logging_every: 2", "logging_every: 2\n  checkpoint_every: 10")
    )
    (run,) = load_experiment(exp_file).runs
    ws = tmp_path / "ws"
    rd = Workspace(ws).run_dir("oom", run.run_id)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(exp_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            hb = rd.heartbeat() or {}
            if hb.get("step", 0) >= 25:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"training did not reach step 25: {rd.heartbeat()}")
        os.kill(int(hb["pid"]), signal.SIGKILL)
        out, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, out[-3000:]
    assert "retry 1 of 1" in " ".join(out.split())
    kept = json.loads((rd.file("attempt-0") / "failure.json").read_text())
    assert "SIGKILL" in kept["cause"] and "out-of-memory" in kept["cause"]
    assert rd.result()["steps"] == 120
    rows = [(r["step"], r["name"]) for r in read_jsonl(rd.file("metrics.jsonl"))]
    assert len(rows) == len(set(rows)) and min(s for s, n in rows if n == "loss") == 2


def test_a_relaunch_names_runs_an_earlier_launch_still_trains_and_waits_for_them(
    write_exp, tmp_path, capsys
):
    import threading
    import time

    from ftsweep.rundir import HEARTBEAT, atomic_write_json

    exp = load_experiment(
        write_exp(experiment_yaml("w", matrix=MATRIX, launch="{heartbeat_timeout_s: 1.5}"))
    )
    ws = Workspace(tmp_path / "ws")
    finishing, dying = exp.runs[0], exp.runs[1]
    for run in (finishing, dying):  # workers on another host, no job record to adopt
        rd = ws.run_dir("w", run.run_id)
        rd.path.mkdir(parents=True)
        atomic_write_json(rd.file("spec.json"), run.to_json())
        atomic_write_json(
            rd.file(HEARTBEAT),
            {"time": time.time(), "pid": 4242, "host": "elsewhere", "step": 7, "max_steps": 10},
        )
    done = ws.run_dir("w", finishing.run_id)
    finisher = threading.Timer(0.5, lambda: atomic_write_json(done.file(RESULT), {"steps": 10}))
    finisher.start()
    ex = FakeExecutor()
    summary = launch(exp, ws, executor=ex)
    finisher.join()
    said = " ".join(" ".join(capsys.readouterr()).split())
    assert "2 run(s) are still being trained by workers of an earlier launch" in said
    assert f"{dying.run_id} (pid 4242 on elsewhere, step 7/10)" in said
    assert summary.exit_code == 0 and summary.busy == []
    assert finishing.run_id in summary.complete and finishing.run_id not in ex.submitted
    assert dying.run_id in ex.submitted  # its worker went silent: resumed here
