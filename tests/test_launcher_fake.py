"""The launcher against a fake executor (no training), and GPU slot allocation without a GPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import experiment_yaml

from ftsweep.config.load import load_experiment
from ftsweep.errors import FtsweepError
from ftsweep.launch.executor import EXECUTORS, Executor, Job, make_executor
from ftsweep.launch.gpus import GpuPool
from ftsweep.launch.launcher import launch
from ftsweep.launch.local import LocalExecutor
from ftsweep.rundir import HEARTBEAT, JOB, RESULT, RunDir, atomic_write_json
from ftsweep.workspace import Workspace


class FakeExecutor(Executor):
    """Completes a job at its second poll; jobs it 'knows' can be reattached."""

    name = "fake"
    detachable = True
    max_machines = 1

    def __init__(self, capacity: int = 2, alive: set[str] | None = None):
        self.capacity = capacity
        self.alive = alive or set()
        self.jobs: list[Job] = []
        self.submitted: list[str] = []
        self.reattached: list[str] = []
        self.max_running = 0

    def submit(self, job: Job) -> None:
        job.job_id = f"fake-{len(self.submitted)}"
        self.submitted.append(job.run_id)
        self.jobs.append(job)
        self.max_running = max(self.max_running, len(self.jobs))

    def poll(self) -> list[tuple[Job, int]]:
        done = []
        for job in list(self.jobs):
            job.handle = (job.handle or 0) + 1  # type: ignore[operator]
            if job.handle >= 2:
                rd = RunDir(job.log_path.parent)
                atomic_write_json(rd.file(RESULT), {"final_eval": {"exact_match": 1.0}})
                done.append((job, 0))
                self.jobs.remove(job)
        return done

    def running(self) -> int:
        return len(self.jobs)

    def cancel_all(self) -> None:
        self.jobs = []

    def reattach(self, job: Job) -> bool:
        if job.job_id not in self.alive:
            return False
        self.reattached.append(job.run_id)
        self.jobs.append(job)
        return True

    def cancel(self, job_ids: list[str]) -> None:
        self.alive -= set(job_ids)


MATRIX = "matrix:\n  method:\n    - {name: lora, r: [4, 8], training.lr: [1.0e-3, 1.0e-2]}\n"


def test_launcher_never_exceeds_capacity_and_records_each_job(write_exp, tmp_path):
    exp = load_experiment(write_exp(experiment_yaml("f", matrix=MATRIX)))
    ex = FakeExecutor(capacity=3)
    summary = launch(exp, Workspace(tmp_path / "ws"), executor=ex)
    assert summary.exit_code == 0 and len(summary.complete) == 4
    assert ex.max_running == 3
    for run in exp.runs:
        record = json.loads(
            Workspace(tmp_path / "ws").run_dir("f", run.run_id).file(JOB).read_text()
        )
        assert record["executor"] == "fake" and record["job_id"].startswith("fake-")


def test_a_relaunch_reattaches_to_live_jobs_instead_of_submitting_again(write_exp, tmp_path):
    exp = load_experiment(write_exp(experiment_yaml("f", matrix=MATRIX)))
    ws = Workspace(tmp_path / "ws")
    # an earlier launcher submitted every run and died: job records, fresh heartbeats
    for i, run in enumerate(exp.runs):
        rd = ws.run_dir("f", run.run_id)
        rd.path.mkdir(parents=True)
        atomic_write_json(rd.file("spec.json"), run.to_json())
        atomic_write_json(rd.file(JOB), {"executor": "fake", "job_id": f"old-{i}"})
        atomic_write_json(rd.file(HEARTBEAT), {"time": time.time(), "pid": 1, "host": "elsewhere"})
    ex = FakeExecutor(alive={"old-0", "old-1", "old-2"})  # old-3 is gone: resubmitted
    summary = launch(exp, ws, executor=ex)
    assert summary.exit_code == 0 and len(summary.complete) == 4
    assert sorted(ex.reattached) == sorted(r.run_id for r in exp.runs[:3])
    assert ex.submitted == [exp.runs[3].run_id]


def test_detach_submits_and_returns_and_is_refused_where_it_cannot_work(write_exp, tmp_path):
    exp = load_experiment(write_exp(experiment_yaml("f", matrix=MATRIX)))
    ex = FakeExecutor(capacity=1)
    summary = launch(exp, Workspace(tmp_path / "ws"), executor=ex, detach=True)
    assert len(summary.detached) == 4 == len(ex.submitted) and summary.complete == []
    with pytest.raises(FtsweepError, match="--detach needs"):
        launch(exp, Workspace(tmp_path / "ws2"), executor=LocalExecutor(1), detach=True)


def test_executors_are_found_by_name_and_an_unknown_one_is_named():
    from ftsweep.config.schema import LaunchBlock

    make_executor("local", LaunchBlock(), Path("."))
    assert {"local", "slurm"} <= set(EXECUTORS)
    with pytest.raises(FtsweepError, match="did you mean 'slurm'"):
        make_executor("slurn", LaunchBlock(), Path("."))


@pytest.mark.parametrize(
    "devices, per_run, capacity",
    [
        ([0, 1, 2, 3], 1, 4),
        ([0, 1, 2, 3], 2, 2),
        ([0, 1, 2], 2, 1),
        ([0, 1], 0.5, 4),
        ([0], 0.25, 4),
        ([5, 7], 1, 2),
    ],
)
def test_gpu_pool_capacity(devices, per_run, capacity):
    assert GpuPool(devices, per_run).capacity() == capacity


def test_runs_get_their_own_gpus_and_never_share_whole_ones():
    pool = GpuPool([0, 1, 2, 3], 2)
    a, b = pool.acquire("a"), pool.acquire("b")
    assert a == [0, 1] and b == [2, 3]
    assert pool.acquire("c") is None  # full: the launcher waits
    pool.release("a")
    assert pool.acquire("c") == [0, 1]


def test_fractional_gpus_are_shared_and_balanced():
    pool = GpuPool([0, 1], 0.5)
    got = [pool.acquire(r) for r in "abcd"]
    assert got == [[0], [1], [0], [1]] and pool.acquire("e") is None
    pool.release("b")
    assert pool.acquire("e") == [1]


def test_local_executor_sets_cuda_visible_devices_from_an_injected_device_list(tmp_path):
    import sys

    ex = LocalExecutor(capacity=8, gpus=[2, 3], gpus_per_run=1)
    assert ex.capacity == 2  # what fits, whatever max_parallel asks
    code = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    jobs = [
        Job(n, [sys.executable, "-c", code], {}, tmp_path, tmp_path / f"{n}.log")
        for n in ("a", "b")
    ]
    for j in jobs:
        ex.submit(j)
    deadline = time.time() + 30
    while ex.running() and time.time() < deadline:
        ex.poll()
        time.sleep(0.05)
    assert [(tmp_path / f"{n}.log").read_text().strip() for n in "ab"] == ["2", "3"]


@pytest.mark.parametrize(
    "launch_yaml, message",
    [
        ("{gpus_per_run: 1.5}", "whole number of GPUs"),
        ("{num_processes: 2, gpus_per_run: 0.5}", "only by single-process"),
        ("{num_processes: 2, gpus_per_run: 1}", "each process needs its own GPU"),
        ("{executor: slurn}", "slurm"),
        ('{slurm: {extra_sbatch: ["--mem=1G\\n#SBATCH --x"]}}', "one line"),
    ],
)
def test_bad_launch_blocks_exit_2(write_exp, capsys, launch_yaml, message):
    from ftsweep.cli import main

    path = write_exp(experiment_yaml("f", matrix=MATRIX, launch=launch_yaml))
    assert main(["validate", str(path)]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
