"""Job records: which executor job trains a run, kept in the run directory (job.json).

The launcher writes one when it submits a run; a later launcher reads it to reattach to
a job that outlived its launcher (a Slurm job, a local process group), and
``ftsweep cancel`` reads it to stop the jobs of an experiment.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from ftsweep.launch.executor import Executor, Job, make_executor
from ftsweep.rundir import JOB, RunDir, RunState, atomic_write_json, read_json
from ftsweep.workspace import Workspace


def write_job_record(rd: RunDir, executor: Executor, job: Job) -> None:
    atomic_write_json(
        rd.file(JOB),
        {
            "executor": executor.name,
            "job_id": job.job_id,
            "host": socket.gethostname(),
            "submitted_at": job.started_at or time.time(),
        },
    )


def read_job_record(rd: RunDir) -> dict[str, Any] | None:
    path = rd.file(JOB)
    if not path.exists():
        return None
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("job_id") else None


def cancel_experiment(ws: Workspace, experiment: str, launch: Any) -> list[str]:
    """Stop every unfinished run's job of an experiment; return the run ids stopped."""
    by_executor: dict[str, list[tuple[str, str]]] = {}
    for rd in ws.iter_run_dirs(experiment):
        if rd.read_state().is_finished():
            continue
        record = read_job_record(rd)
        if record is not None:
            by_executor.setdefault(str(record["executor"]), []).append(
                (rd.run_id, str(record["job_id"]))
            )
    stopped: list[str] = []
    for name, jobs in sorted(by_executor.items()):
        executor = make_executor(name, launch, ws.root)
        executor.cancel([job_id for _, job_id in jobs])
        stopped += [run_id for run_id, _ in jobs]
    for run_id in stopped:  # recorded at once, not left to look like a live run
        rd = ws.run_dir(experiment, run_id)
        if rd.read_state() != RunState.COMPLETE:
            rd.write_failure("cancelled with `ftsweep cancel`", "")
    return stopped


def job_for(rd: RunDir, record: dict[str, Any], cwd: Path, env: dict[str, str]) -> Job:
    """A Job that stands for an earlier launcher's job, for ``Executor.reattach``."""
    return Job(
        rd.run_id,
        [],
        env,
        cwd,
        rd.file("worker.log"),
        started_at=float(record.get("submitted_at") or time.time()),
        job_id=str(record["job_id"]),
    )
