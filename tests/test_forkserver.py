"""The fork server (launch/forkserver.py): same results as a cold process, isolation kept."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import experiment_yaml

from ftsweep.cli import main
from ftsweep.launch.executor import Job
from ftsweep.launch.forkserver import eligible
from ftsweep.launch.local import LocalExecutor, _group_alive
from ftsweep.workspace import Workspace


def test_only_what_accelerate_runs_with_its_simple_launcher_is_forked():
    base = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu"]
    assert eligible(base + ["-m", "ftsweep.worker", "RUN"])
    assert not eligible([*base[:4], "2", "--multi_gpu", "-m", "ftsweep.worker", "RUN"])
    assert not eligible(base + ["--config_file", "c.yaml", "-m", "ftsweep.worker", "RUN"])
    assert not eligible([sys.executable, "-c", "print(1)"])


@pytest.mark.slow
def test_forked_runs_give_the_metrics_of_cold_processes(write_exp, tmp_path):
    matrix = "matrix:\n  method:\n    - base\n    - {name: lora, r: 4, training.lr: [1.0e-2]}\n"
    results = {}
    for fork in (False, True):
        launch = f"{{fork_server: {str(fork).lower()}, max_parallel: 2, threads_per_process: 1}}"
        path = write_exp(experiment_yaml("f", matrix=matrix, launch=launch), f"{fork}.yaml")
        ws = tmp_path / str(fork)
        assert main(["--workspace", str(ws), "launch", str(path)]) == 0
        results[fork] = {
            rd.spec()["method"]: (
                rd.result()["final_eval"],
                json.loads(rd.file("provenance.json").read_text())["device"],
            )
            for rd in Workspace(ws).iter_run_dirs("f")
        }
        logs = [rd.file("worker.log").read_text() for rd in Workspace(ws).iter_run_dirs("f")]
        assert all("Traceback" not in log for log in logs)
    assert results[True] == results[False]


def test_a_failed_forked_run_is_reported_and_gets_a_fresh_server(tmp_path):
    ex = LocalExecutor(capacity=2, fork_server=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    argv = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--cpu",
        "-m",
        "ftsweep.worker",
        str(run_dir),
    ]  # no spec.json: the worker fails
    job = Job("r", argv, dict(os.environ), tmp_path, run_dir / "worker.log")
    ex.submit(job)
    assert ex._forked, "the run went through the fork server"  # noqa: SLF001
    first = ex._server  # noqa: SLF001
    deadline = time.time() + 120
    done: list = []
    while not done and time.time() < deadline:
        done = ex.poll()
        time.sleep(0.1)
    assert [(j.run_id, rc != 0) for j, rc in done] == [("r", True)]
    assert ex._server is None and not first.alive()  # noqa: SLF001
    assert "spec.json" in (run_dir / "worker.log").read_text()  # the cause is in the log
    ex.cancel_all()


def test_cancel_all_kills_forked_runs(write_exp, tmp_path: Path):
    from ftsweep.config.load import load_experiment
    from ftsweep.rundir import RunDir, atomic_write_json

    exp = load_experiment(
        write_exp(experiment_yaml("c", matrix="matrix:\n  method: [full]\n", max_steps=5000))
    )
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    atomic_write_json(rd.file("spec.json"), exp.runs[0].to_json())
    ex = LocalExecutor(capacity=1, fork_server=True)
    argv = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--cpu",
        "-m",
        "ftsweep.worker",
        str(rd.path),
    ]
    job = Job("r", argv, dict(os.environ), tmp_path, rd.file("worker.log"))
    ex.submit(job)
    pid = int(job.job_id.split("@")[0])
    deadline = time.time() + 120
    while not (rd.heartbeat() or {}).get("step") and time.time() < deadline:
        time.sleep(0.2)
    assert (rd.heartbeat() or {}).get("step"), "the forked run trains"
    ex.cancel_all()
    assert ex.running() == 0
    time.sleep(0.2)
    assert not _group_alive(pid)  # gone, or a zombie waiting for its reaper
