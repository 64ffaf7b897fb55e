"""Sweeps through a real single-node Slurm cluster (tests/slurm_cluster.py) on the shipped
model: same metrics as local runs, cancelled and preempted jobs, a killed launcher and
--detach. Skipped with the reason where Slurm cannot run; CI installs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, experiment_yaml

from ftsweep.cli import main
from ftsweep.config.load import load_experiment
from ftsweep.launch.slurm import job_info
from ftsweep.rundir import RunDir
from ftsweep.store import run_query
from ftsweep.workspace import Workspace

# One Slurm cluster per test session: under pytest-xdist, every test that uses it runs
# in the same worker (make test: --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]

SLURM = '{executor: slurm, threads_per_process: 1, slurm: {poll_interval_s: 0.5, time: "10"}}'
LOCAL = "{threads_per_process: 1, max_parallel: 2}"
GRID = "matrix:\n  method:\n    - {name: lora, r: 4, training.lr: [1.0e-2, 3.0e-3]}\n"


def cli(ws: Path, *args: str) -> int:
    return main(["--workspace", str(ws), *args])


def final_evals(ws: Path, experiment: str) -> dict[str, dict]:
    out = {}
    for rd in Workspace(ws).iter_run_dirs(experiment):
        spec = rd.spec()
        key = json.dumps([spec["method"], spec["params"], spec["seed"]], sort_keys=True)
        out[key] = (rd.result() or {}).get("final_eval")
    return out


def jobs_named(run_id: str) -> int:
    text = subprocess.run(["scontrol", "show", "jobs", "-o"], capture_output=True, text=True).stdout
    return sum(f"JobName=ftsweep-{run_id} " in line for line in text.splitlines())


def wait_for(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def job_id(rd: RunDir) -> str:
    return json.loads(rd.file("job.json").read_text())["job_id"]


def test_a_grid_through_slurm_gives_the_metrics_of_local_runs(slurm_cluster, write_exp, tmp_path):
    local = write_exp(experiment_yaml("g", matrix=GRID, launch=LOCAL), "local.yaml")
    slurm = write_exp(experiment_yaml("g", matrix=GRID, launch=SLURM), "slurm.yaml")
    assert cli(tmp_path / "local", "launch", str(local)) == 0
    assert cli(tmp_path / "slurm", "launch", str(slurm)) == 0
    a, b = final_evals(tmp_path / "local", "g"), final_evals(tmp_path / "slurm", "g")
    assert len(a) == 2 and a == b  # CPU training is deterministic: the same numbers
    _, rows = run_query(
        Workspace(tmp_path / "slurm"), "select count(*) from runs where status = 'complete'"
    )
    assert rows == [(2,)]
    for rd in Workspace(tmp_path / "slurm").iter_run_dirs("g"):  # one Slurm job per run
        assert jobs_named(rd.run_id) == 1
        assert "#SBATCH --requeue" in rd.file("slurm.sh").read_text()


def test_a_scancelled_job_is_failed_with_its_cause_and_retried(slurm_cluster, write_exp, tmp_path):
    exp_file = write_exp(
        experiment_yaml("c", matrix="matrix:\n  method: [full]\n", max_steps=60, launch=SLURM)
    )
    ws = tmp_path / "ws"
    (run,) = load_experiment(exp_file).runs
    rd = Workspace(ws).run_dir("c", run.run_id)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(exp_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: (rd.heartbeat() or {}).get("step", 0) >= 5, 180, "training to start")
    subprocess.run(["scancel", job_id(rd)], check=True)
    assert launcher.wait(timeout=120) == 1
    failure = rd.failure()
    assert failure is not None and "CANCELLED" in failure["cause"]
    assert cli(ws, "launch", str(exp_file)) == 1  # failed, not retried without the flag
    assert cli(ws, "launch", "--retry-failed", str(exp_file)) == 0
    assert rd.result()["steps"] == 60


def test_a_job_signalled_before_its_time_limit_checkpoints_requeues_and_matches(
    slurm_cluster, write_exp, tmp_path
):
    """Slurm sends USR1 `signal_grace_s` before the time limit (up to a minute earlier:
    its timer's resolution). The test sends that same signal to the batch shell with
    `scancel --signal=USR1 --batch` mid-training, and lifts the 2-minute hold Slurm puts
    on a requeued job, so it runs in seconds instead of minutes."""
    text = experiment_yaml("p", matrix="matrix:\n  method: [full]\n", max_steps=80, launch=SLURM)
    exp_file = write_exp(text)
    ws = tmp_path / "ws"
    (run,) = load_experiment(exp_file).runs
    rd = Workspace(ws).run_dir("p", run.run_id)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(exp_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (rd.heartbeat() or {}).get("step", 0) >= 20, 180, "step 20")
        jid = job_id(rd)
        subprocess.run(["scancel", "--signal=USR1", "--batch", jid], check=True)
        wait_for(lambda: (job_info(jid) or {}).get("Restarts", "0") != "0", 120, "a requeue")
        # slurmd refuses ("Job credential revoked") a launch in the same second as the
        # kill that requeued the job; the 2-minute hold normally hides that.
        wait_for(lambda: (job_info(jid) or {}).get("JobState") == "PENDING", 60, "pending")
        time.sleep(2)
        subprocess.run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], check=True)
        assert launcher.wait(timeout=300) == 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
    log = rd.file("worker.log").read_text()
    assert "checkpointed before the time limit; requeueing" in log and "restart 1" in log
    assert jobs_named(run.run_id) == 1  # the same job, requeued, not a new submission
    result = rd.result()
    assert result["steps"] == 80
    # the same run without interruption, locally: the same metrics
    assert (
        cli(tmp_path / "ref", "launch", str(write_exp(text.replace(SLURM, LOCAL), "ref.yaml"))) == 0
    )
    (ref,) = final_evals(tmp_path / "ref", "p").values()
    assert result["final_eval"] == pytest.approx(ref, rel=1e-6)


def test_a_killed_launcher_and_detach_reattach_without_duplicate_jobs(
    slurm_cluster, write_exp, tmp_path
):
    grid = "matrix:\n  method:\n    - {name: lora, r: 4, training.lr: [1.0e-2, 3.0e-3]}\n"
    exp_file = write_exp(experiment_yaml("k", matrix=grid, max_steps=40, launch=SLURM))
    ws = tmp_path / "ws"
    runs = load_experiment(exp_file).runs
    rds = [Workspace(ws).run_dir("k", r.run_id) for r in runs]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(exp_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: all(rd.file("job.json").exists() for rd in rds), 120, "every submission")
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait(timeout=30)
    ids = [job_id(rd) for rd in rds]
    assert cli(ws, "status") == 0  # reads the run directories while the jobs run on
    assert cli(ws, "launch", str(exp_file)) == 0  # reattaches and waits for them
    assert [job_id(rd) for rd in rds] == ids
    assert all(jobs_named(r.run_id) == 1 for r in runs)
    assert all(rd.result() for rd in rds)
    # --detach submits and returns at once; a later launch reattaches and finishes
    one = "matrix:\n  method:\n    - {name: lora, r: 4}\n"
    exp2 = write_exp(experiment_yaml("d", matrix=one, max_steps=10, launch=SLURM), "d.yaml")
    t0 = time.time()
    assert cli(ws, "launch", "--detach", str(exp2)) == 0
    assert time.time() - t0 < 30
    assert cli(ws, "status", "--experiment", "d") == 0
    assert cli(ws, "launch", str(exp2)) == 0
    assert all(rd.result() for rd in Workspace(ws).iter_run_dirs("d"))
    assert all(jobs_named(rd.run_id) == 1 for rd in Workspace(ws).iter_run_dirs("d"))


def test_a_run_over_two_nodes_gives_the_metrics_of_ddp_on_one(slurm_cluster, write_exp, tmp_path):
    """num_machines 2: one job on both nodes of the test cluster, srun starting one
    `accelerate launch` per node (rank 0 and 1, gloo over 127.0.0.1). CPU DDP is
    deterministic, so it must give the numbers of 2 processes on one machine."""
    one_node = "{threads_per_process: 1, num_processes: 2}"
    two_nodes = (
        "{executor: slurm, threads_per_process: 1, num_processes: 2, num_machines: 2, "
        'slurm: {poll_interval_s: 0.5, time: "10"}}'
    )
    grid = "matrix:\n  method:\n    - {name: lora, r: 4}\n"
    local = write_exp(experiment_yaml("mn", matrix=grid, max_steps=6, launch=one_node), "a.yaml")
    multi = write_exp(experiment_yaml("mn", matrix=grid, max_steps=6, launch=two_nodes), "b.yaml")
    assert cli(tmp_path / "one", "launch", str(local)) == 0
    assert cli(tmp_path / "two", "launch", str(multi)) == 0
    (rd,) = Workspace(tmp_path / "two").iter_run_dirs("mn")
    script = rd.file("slurm.sh").read_text()
    assert "#SBATCH --nodes=2" in script and "srun --nodes=2" in script
    info = job_info(job_id(rd))
    assert info is not None and info["NumNodes"] == "2"
    (a,), (b,) = (list(final_evals(tmp_path / w, "mn").values()) for w in ("one", "two"))
    assert a is not None and a == b
    assert rd.result()["steps"] == 6
