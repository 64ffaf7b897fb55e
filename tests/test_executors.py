"""The Executor contract (launch/executor.py), one suite for every executor (STYLE 5)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from ftsweep.config.schema import SlurmOptions
from ftsweep.launch.executor import Executor, Job
from ftsweep.launch.local import LocalExecutor
from ftsweep.launch.slurm import SlurmExecutor

# name → (factory, fixtures it needs)
EXECUTORS = {
    "local": (lambda: LocalExecutor(capacity=2), ()),
    "slurm": (lambda: SlurmExecutor(SlurmOptions(poll_interval_s=0.2), capacity=2),
              ("slurm_cluster",)),
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
    j = Job("nope", [str(tmp_path / "no-such-program")], dict(os.environ), tmp_path,
            tmp_path / "nope.log")
    executor.submit(j)
    assert wait_all(executor) == {"nope": 127}
    assert "no-such-program" in (tmp_path / "nope.log").read_text()  # the log says what


def test_cancel_all_stops_the_job_and_its_children(executor, tmp_path):
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
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
