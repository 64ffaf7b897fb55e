"""Local executor: each run is a process group on this machine, ``max_parallel`` at once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import cast

from ftsweep.launch.executor import Executor, Job


def _proc(job: Job) -> subprocess.Popen[bytes]:
    return cast("subprocess.Popen[bytes]", job.handle)


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._jobs: list[Job] = []
        self._failed_to_start: list[tuple[Job, int]] = []

    def submit(self, job: Job) -> None:
        job.started_at = time.time()
        try:
            with open(job.log_path, "ab") as log:  # the child keeps its own copy of the fd
                # A new session makes the run its own process group, so cancel can kill
                # the launcher and every rank it spawned without touching ftsweep itself.
                job.handle = subprocess.Popen(
                    job.argv, cwd=job.cwd, env=job.env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
        except OSError as exc:
            with open(job.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"ftsweep: could not start {job.argv[0]}: {exc}\n")
            self._failed_to_start.append((job, 127))
            return
        self._jobs.append(job)

    def poll(self) -> list[tuple[Job, int]]:
        done, self._failed_to_start = self._failed_to_start, []
        still = []
        for job in self._jobs:
            rc = _proc(job).poll()
            if rc is None:
                still.append(job)
            else:
                done.append((job, rc))
        self._jobs = still
        return done

    def running(self) -> int:
        return len(self._jobs)

    def cancel_all(self) -> None:
        for job in self._jobs:
            try:
                os.killpg(_proc(job).pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        for job in self._jobs:
            try:
                _proc(job).wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(_proc(job).pid, signal.SIGKILL)
        self._jobs = []
