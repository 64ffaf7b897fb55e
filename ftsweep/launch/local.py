"""Local executor: each run is a process group on this machine, ``capacity`` at once.

On a CUDA machine each run gets its own GPUs through ``CUDA_VISIBLE_DEVICES``
(``launch/gpus.py``); on CPU the launcher splits the cores between parallel runs. A job
id is ``<process group id>@<host>``, so a later launcher on the same host can reattach
to a run whose launcher died and stop it with ``ftsweep cancel``.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import psutil

from ftsweep.launch.executor import Executor, Job, register
from ftsweep.launch.forkserver import ForkServer, eligible
from ftsweep.launch.gpus import GpuPool, visible_devices


def _proc(job: Job) -> subprocess.Popen[bytes] | None:
    return cast("subprocess.Popen[bytes] | None", job.handle)


def _group_alive(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie (an exited child that
    its parent has not reaped still answers signal 0)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.info["pid"]) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def _parse_job_id(job_id: str) -> tuple[int, str] | None:
    pgid, _, host = job_id.partition("@")
    return (int(pgid), host) if pgid.isdigit() else None


class LocalExecutor(Executor):
    name = "local"
    max_machines = 1  # one host: its processes, its GPUs
    detachable = False  # the launcher schedules local runs; without it nothing would

    def __init__(
        self,
        capacity: int,
        gpus: list[int] | None = None,
        gpus_per_run: float = 1.0,
        fork_server: bool = False,
    ):
        self.pool = GpuPool(gpus, gpus_per_run) if gpus else None
        self.capacity = min(capacity, self.pool.capacity()) if self.pool else capacity
        self.fork_server = fork_server
        self._server: ForkServer | None = None
        self._forked: dict[int, Job] = {}  # pid → job started by the fork server
        self._jobs: list[Job] = []
        self._adopted: list[tuple[Job, int]] = []  # (job, pgid) of an earlier launcher
        self._failed_to_start: list[tuple[Job, int]] = []

    @classmethod
    def from_launch(cls, launch: Any, root: Path) -> LocalExecutor:
        devices = visible_devices(launch.gpus)
        per_run = launch.gpus_per_run or float(launch.num_processes)
        if devices:
            # No fork server on a CUDA machine: the imports it shares initialise CUDA, and a
            # process forked after that cannot use CUDA ("Cannot re-initialize CUDA in
            # forked subprocess", seen on an H200). GPU runs start cold.
            fits = GpuPool(devices, per_run).capacity()
            return cls(launch.max_parallel or fits, devices, per_run, fork_server=False)
        return cls(launch.max_parallel or 1, fork_server=launch.fork_server)

    def submit(self, job: Job) -> None:
        job.started_at = time.time()
        if self.pool is not None:
            got = self.pool.acquire(job.run_id)
            if got is None:  # the launcher respects capacity, so this is a bug
                raise RuntimeError(f"no free GPU for {job.run_id}: capacity {self.capacity}")
            job.env = {**job.env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, got))}
        if self.fork_server and eligible(job.argv) and self._fork(job):
            return
        try:
            with open(job.log_path, "ab") as log:  # the child keeps its own copy of the fd
                # A new session makes the run its own process group, so cancel can kill
                # the launcher and every rank it spawned without touching ftsweep itself.
                proc = subprocess.Popen(
                    job.argv,
                    cwd=job.cwd,
                    env=job.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as exc:
            with open(job.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"ftsweep: could not start {job.argv[0]}: {exc}\n")
            self._release(job)
            self._failed_to_start.append((job, 127))
            return
        job.handle = proc
        job.job_id = f"{proc.pid}@{socket.gethostname()}"
        self._jobs.append(job)

    def _fork(self, job: Job) -> bool:
        """Start the job through the fork server; False to fall back to a cold start."""
        try:
            if self._server is None or not self._server.alive():
                self._server = ForkServer(job.env)
            pid = self._server.start(job.argv, job.cwd, job.log_path, job.env)
        except (OSError, RuntimeError, queue.Empty):
            self._drop_server()
            return False
        job.handle = pid
        job.job_id = f"{pid}@{socket.gethostname()}"
        self._forked[pid] = job
        return True

    def _drop_server(self) -> None:
        """Forget the server; children it forked run on and are watched by process group."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for pid, job in self._forked.items():
            self._adopted.append((job, pid))
        self._forked = {}

    def _poll_forked(self) -> list[tuple[Job, int]]:
        if self._server is None:
            return []
        done = []
        failed = False
        for msg in self._server.events():
            if "server_exit" in msg:
                failed = True
            elif "rc" in msg and msg["pid"] in self._forked:
                # rc is minus the signal when one killed it; the launcher names it.
                job, rc = self._forked.pop(msg["pid"]), int(msg["rc"])
                done.append((job, rc))
                self._release(job)
                failed = failed or rc != 0
        if failed:  # a fresh server after any failure: nothing a failed run did can leak
            self._drop_server()
        return done

    def poll(self) -> list[tuple[Job, int]]:
        done, self._failed_to_start = self._failed_to_start, []
        done += self._poll_forked()
        still = []
        for job in self._jobs:
            proc = _proc(job)
            rc = proc.poll() if proc is not None else None
            if rc is None:
                still.append(job)
            else:
                done.append((job, rc))  # -N for a signal: the launcher names it
                self._release(job)
        self._jobs = still
        adopted = []
        for job, pgid in self._adopted:
            if _group_alive(pgid):
                adopted.append((job, pgid))
            else:  # not our child: its exit code is gone; the run directory tells
                job.reason = "reattached; exit code unknown"
                done.append((job, 0))
        self._adopted = adopted
        return done

    def running(self) -> int:
        return len(self._jobs) + len(self._adopted) + len(self._forked)

    def reattach(self, job: Job) -> bool:
        parsed = _parse_job_id(job.job_id)
        if parsed is None or parsed[1] != socket.gethostname() or not _group_alive(parsed[0]):
            return False
        self._adopted.append((job, parsed[0]))
        return True

    def cancel_all(self) -> None:
        procs = {p.pid: p for j in self._jobs if (p := _proc(j)) is not None}

        def alive(pgid: int) -> bool:
            if pgid in procs and procs[pgid].poll() is not None:  # reap our own child
                return _group_alive(pgid)  # its ranks may outlive it
            return _group_alive(pgid)

        forked = list(self._forked)
        if self._server is not None:
            self._server.close()  # it reaps nothing more; the groups are watched directly
            self._server = None
        _stop_groups([*procs, *(pgid for _, pgid in self._adopted), *forked], alive)
        for proc in procs.values():
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        for job in [*self._jobs, *self._forked.values()]:
            self._release(job)
        self._jobs, self._adopted, self._forked = [], [], {}

    def cancel(self, job_ids: list[str]) -> None:
        here = socket.gethostname()
        _stop_groups(
            [p[0] for j in job_ids if (p := _parse_job_id(j)) and p[1] == here], _group_alive
        )

    def _release(self, job: Job) -> None:
        if self.pool is not None:
            self.pool.release(job.run_id)


def _stop_groups(groups: list[int], alive: Any, grace_s: float = 10.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left after ``grace_s``."""
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace_s
    while time.time() < deadline and any(alive(g) for g in groups):
        time.sleep(0.1)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


register("local")(LocalExecutor.from_launch)
