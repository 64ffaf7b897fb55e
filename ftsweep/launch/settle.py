"""Settling a finished process group: what it left in its run directory becomes its state.

The failure is recorded first (cause, log tail, whether a retry may help), then the
launcher's policies act on it (launch/retry.py). A disk too full to record the outcome
leaves the run lost, for the next launch to resume, instead of stopping the sweep.
"""

from __future__ import annotations

import time

from ftsweep.launch.executor import Job
from ftsweep.launch.exits import exit_cause, killed_involuntarily
from ftsweep.launch.storekeeper import StoreKeeper
from ftsweep.rundir import WORKER_LOG, RunDir, RunState
from ftsweep.store import no_space

LOG_TAIL_CHARS = 4000


def _log_tail(rd: RunDir) -> str:
    p = rd.file(WORKER_LOG)
    if not p.exists():
        return ""
    with open(p, "rb") as fh:
        fh.seek(max(0, p.stat().st_size - LOG_TAIL_CHARS))
        return fh.read().decode("utf-8", errors="replace")


def _record_process(rd: RunDir, job: Job, rc: int) -> None:
    rd.record_process(job.started_at, time.time(), rc, job.argv)


def outcome(rd: RunDir, job: Job, rc: int, keeper: StoreKeeper) -> RunState:
    """Record how a process group ended; with the disk full the run is left lost (its
    directory untouched: the next launch resumes it) instead of stopping the sweep."""
    try:
        _record_process(rd, job, rc)
        return settle(rd, rc, job.reason)
    except OSError as exc:
        if not no_space(exc):
            raise
        keeper.disk_full(exc, f"recording how run {rd.run_id} ended")
        return RunState.LOST


def settle(rd: RunDir, rc: int, reason: str = "") -> RunState:
    """Record the outcome of a finished process group; the failure cause first.

    A result.json means the worker finished everything (it is written last); a non-zero
    exit after it (a DDP rank failing at teardown) is noted in the log, not a failure.
    """
    if rd.result() is not None:  # a corrupt one is a failure (rd.failure() says why)
        if rc != 0:
            with open(rd.file(WORKER_LOG), "a", encoding="utf-8") as fh:
                fh.write(f"ftsweep: exit code {rc} after the result was written; kept\n")
        return RunState.COMPLETE
    failure = rd.failure()
    if failure is not None and failure.get("pruned"):
        return RunState.PRUNED
    tail = _log_tail(rd)
    if failure is None:
        cause = exit_cause(rc, tail)
        if reason:
            cause += f" ({reason})"
        rd.write_failure(
            cause,
            tail,
            retryable=killed_involuntarily(rc, tail, reason),
            disk_full=_no_space_in(cause, tail),
        )
    elif not failure.get("log_tail") or (
        _no_space_in(failure["cause"], tail) and not failure.get("disk_full")
    ):
        # A full disk is the machine's failure, not the run's: the next launch trains it
        # again without --retry-failed (plan.py), once space was freed.
        extra = {k: v for k, v in failure.items() if k not in ("cause", "log_tail", "time")}
        rd.write_failure(
            failure["cause"],
            failure.get("log_tail") or tail,
            **{**extra, "disk_full": _no_space_in(failure["cause"], tail)},
        )
    return RunState.FAILED


def _no_space_in(*texts: str) -> bool:
    return any("No space left on device" in t or "Errno 28" in t for t in texts)
