"""The Executor contract (launch/executor.py), one suite for every executor (STYLE 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import experiment_yaml

from ftsweep.cli import main
from ftsweep.config.schema import SlurmOptions
from ftsweep.launch.executor import MAIN_ADDR, MAIN_PORT, NODE_RANK, Executor, Job
from ftsweep.launch.local import LocalExecutor
from ftsweep.launch.slurm import SlurmExecutor, batch_script

# The slurm cases share the session's one Slurm cluster with tests/test_slurm.py.
pytestmark = pytest.mark.xdist_group("slurm")

# name → (factory, fixtures it needs)
EXECUTORS = {
    "local": (lambda: LocalExecutor(capacity=2), ()),
    "slurm": (
        lambda: SlurmExecutor(SlurmOptions(poll_interval_s=0.2), capacity=2),
        ("slurm_cluster",),
    ),
}


@pytest.fixture(params=sorted(EXECUTORS))
def executor(request) -> Executor:
    factory, needs = EXECUTORS[request.param]
    for name in needs:
        request.getfixturevalue(name)
    ex = factory()
    yield ex
    ex.cancel_all()


@pytest.fixture
def same_kind(executor, request):
    """A second, independent executor of the same kind: a later launcher."""
    factory, _ = EXECUTORS[executor.name]
    ex = factory()
    yield ex
    ex.cancel_all()


def job(tmp: Path, name: str, code: str) -> Job:
    return Job(name, [sys.executable, "-c", code], dict(os.environ), tmp, tmp / f"{name}.log")


def wait_all(ex: Executor, timeout: float = 30) -> dict[str, int]:
    done: dict[str, int] = {}
    deadline = time.time() + timeout
    while ex.running() and time.time() < deadline:
        for j, rc in ex.poll():
            assert j.run_id not in done, "a job was reported twice"
            done[j.run_id] = rc
        time.sleep(0.05)
    for j, rc in ex.poll():
        done[j.run_id] = rc
    return done


def test_submit_returns_at_once_and_poll_reports_each_job_once(executor, tmp_path):
    t0 = time.time()
    executor.submit(job(tmp_path, "ok", "import time; time.sleep(0.5); print('hello')"))
    executor.submit(job(tmp_path, "bad", "raise SystemExit(3)"))
    assert time.time() - t0 < 0.5
    assert executor.running() == 2 <= executor.capacity
    assert wait_all(executor) == {"ok": 0, "bad": 3}
    assert "hello" in (tmp_path / "ok.log").read_text()  # output captured in the job's log
    assert executor.poll() == []


def test_a_job_that_cannot_start_is_reported_not_raised(executor, tmp_path):
    j = Job(
        "nope",
        [str(tmp_path / "no-such-program")],
        dict(os.environ),
        tmp_path,
        tmp_path / "nope.log",
    )
    executor.submit(j)
    assert wait_all(executor) == {"nope": 127}
    assert "no-such-program" in (tmp_path / "nope.log").read_text()  # the log says what


def test_cancel_all_stops_the_job_and_its_children(executor, tmp_path):
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    executor.submit(job(tmp_path, "tree", code))
    deadline = time.time() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    executor.cancel_all()
    assert executor.running() == 0
    time.sleep(0.3)
    try:  # killed: gone, or a zombie until its reaper collects it
        assert psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass


def test_a_later_launcher_reattaches_to_a_running_job(executor, same_kind, tmp_path):
    j = job(tmp_path, "long", "import time; time.sleep(4); print('finished')")
    executor.submit(j)
    assert j.job_id, "submit sets the executor's job id"
    time.sleep(1.0)
    executor._jobs = []  # the first launcher dies (forgets its jobs) # type: ignore[attr-defined]
    again = Job("long", [], dict(os.environ), tmp_path, tmp_path / "long.log", job_id=j.job_id)
    assert same_kind.reattach(again)
    assert same_kind.running() == 1
    assert set(wait_all(same_kind, timeout=60)) == {"long"}
    assert "finished" in (tmp_path / "long.log").read_text()
    gone = Job("long", [], dict(os.environ), tmp_path, tmp_path / "long.log", job_id=j.job_id)
    assert not same_kind.reattach(gone)  # finished: nothing to reattach to


def test_cancel_stops_an_earlier_launchers_job(executor, same_kind, tmp_path):
    marker = tmp_path / "still-running"
    code = f"import time; time.sleep(3); open({str(marker)!r}, 'w').write('x')"
    j = job(tmp_path, "victim", code)
    executor.submit(j)
    time.sleep(1.0)
    same_kind.cancel([j.job_id])
    time.sleep(4.0)
    assert not marker.exists(), "the cancelled job ran to its end"


def test_multi_node_settings_are_checked_before_anything_runs(write_exp, tmp_path):
    bad = write_exp(experiment_yaml("mn", launch="{num_processes: 3, num_machines: 2}"), "a.yaml")
    assert main(["--workspace", str(tmp_path / "ws"), "validate", str(bad)]) == 2
    local = write_exp(experiment_yaml("mn", launch="{num_processes: 2, num_machines: 2}"), "b.yaml")
    assert main(["--workspace", str(tmp_path / "ws"), "launch", str(local)]) == 2
    assert not (tmp_path / "ws" / "runs").exists()  # refused before any run directory


def test_a_multi_node_batch_script_gives_each_node_its_rank_and_the_first_nodes_address(tmp_path):
    """The script's per-node function, run as srun would run it on node 1."""
    argv = [
        sys.executable,
        "-c",
        "import json, sys; print(json.dumps(sys.argv[1:]))",
        "--machine_rank",
        NODE_RANK,
        "--main_process_ip",
        MAIN_ADDR,
        "--main_process_port",
        MAIN_PORT,
        "an arg with 'quotes' and $HOME",
    ]
    job = Job("r1", argv, {}, tmp_path, tmp_path / "worker.log", num_processes=4, num_machines=2)
    script = batch_script(job, SlurmOptions(gpus_per_run=4))
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=2" in script
    assert "#SBATCH --ntasks=1" not in script
    func = next(line for line in script.splitlines() if line.startswith("ftsweep_node()"))
    out = subprocess.run(
        ["bash", "-c", f"{func}\nftsweep_node"],
        capture_output=True,
        text=True,
        env={
            "SLURM_NODEID": "1",
            "FTSWEEP_MAIN_ADDR": "10.0.0.7",
            "FTSWEEP_MAIN_PORT": "20042",
            "PATH": "/usr/bin:/bin",
        },
        check=True,
    ).stdout
    assert json.loads(out) == [
        "--machine_rank",
        "1",
        "--main_process_ip",
        "10.0.0.7",
        "--main_process_port",
        "20042",
        "an arg with 'quotes' and $HOME",
    ]
