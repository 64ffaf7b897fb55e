"""The run directory: the source of truth for one run (DESIGN invariant 2).

A worker writes only here; the store is rebuilt from these files. Layout of
``<workspace>/runs/<experiment>/<run_id>/``::

    spec.json          RunSpec as written by the launcher before the worker starts
    provenance.json    package versions, git commit + dirty flag of the launch directory,
                       ftsweep's own {"version", "commit", "dirty"}, host, device, fingerprints
    metrics.jsonl      append-only, one JSON object a line, flushed per record:
                       {"step": int, "epoch": float|null, "name": str, "value": float, "time": float}
    evals.jsonl        per-example scores, one a line:
                       {"split": str, "example_id": str, "metric": str, "value": float,
                        "prediction": str, "reference": str}
    heartbeat.json     rewritten atomically every few seconds while the worker lives:
                       {"time": float, "pid": int, "step": int, "max_steps": int,
                        "loss": float|null, "eta_s": float|null}
    result.json        written atomically once, last, on success; its times sum every attempt
    attempt.json       the live attempt's times (rank 0, rewritten with each heartbeat)
    attempts.jsonl     one line per ended attempt: {"id", "outcome", "started_at",
                       "last_seen", "setup_s", "train_s", "tokens", "eval_s", ...}
                       (ftsweep.worker.attempts; the last line per id counts)
    failure.json       {"cause": str, "log_tail": str, "time": float, "pruned": bool}, on failure;
                       a pruned run adds {"step": int, "value": float} (where it stopped)
    worker.log         stdout + stderr of the ``accelerate launch`` process group
    launch.json        written by the launcher when the process group exits:
                       {"submitted_at", "exited_at", "returncode", "process_wall_s", "argv",
                        "attempts": [{"submitted_at", "exited_at", "returncode", "wall_s"}]};
                       process_wall_s sums the process groups the launcher saw exit
    job.json           the executor job that trains the run: {"executor", "job_id", "host",
                       "submitted_at"} (reattach after a launcher dies; `ftsweep cancel`)
    preempted.json     the worker saved a checkpoint and stopped on SIGUSR1 (a time limit or
                       preemption ahead): {"step", "time"}; the job requeues and resumes
    intermediate.jsonl a search trial's pruning requests (worker, rank 0): {"step", "value", "time"}
    decisions.jsonl    the launcher's answers: {"step", "prune", "time"} (ftsweep.search.driver)
    artifacts/         trained adapter or model (safetensors), tokenizer, training_config.json

A run's state is derived from which files exist (``read_state``); nothing else
keeps state, so a killed process can never leave a state that disagrees with disk.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

SPEC = "spec.json"
PROVENANCE = "provenance.json"
METRICS = "metrics.jsonl"
EVALS = "evals.jsonl"
HEARTBEAT = "heartbeat.json"
RESULT = "result.json"
FAILURE = "failure.json"
WORKER_LOG = "worker.log"
ARTIFACTS = "artifacts"
CHECKPOINTS = "checkpoints"
LAUNCH = "launch.json"
JOB = "job.json"
PREEMPTED = "preempted.json"
INTERMEDIATE = "intermediate.jsonl"
DECISIONS = "decisions.jsonl"
ATTEMPT = "attempt.json"
ATTEMPTS = "attempts.jsonl"

# A heartbeat older than this means the worker is gone (killed, OOM, machine lost).
HEARTBEAT_STALE_S = 60.0


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"
    LOST = "lost"

    def is_finished(self) -> bool:
        return self in (RunState.COMPLETE, RunState.FAILED, RunState.PRUNED)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read an append-only log; a torn last line (the in-flight record) is ignored."""
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # the writer died mid-record: that record was never committed
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


class JsonlAppender:
    """Append-only JSONL log, flushed per record (invariant 4: lose at most the in-flight step)."""

    def __init__(self, path: Path):
        self.path = path
        self._fh: TextIO = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


@dataclass
class RunDir:
    path: Path

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def run_id(self) -> str:
        return self.path.name

    def spec(self) -> dict[str, Any]:
        return read_json(self.file(SPEC))

    def exists(self) -> bool:
        return self.file(SPEC).exists()

    def result(self) -> dict[str, Any] | None:
        p = self.file(RESULT)
        return read_json(p) if p.exists() else None

    def failure(self) -> dict[str, Any] | None:
        p = self.file(FAILURE)
        return read_json(p) if p.exists() else None

    def heartbeat(self) -> dict[str, Any] | None:
        p = self.file(HEARTBEAT)
        if not p.exists():
            return None
        try:
            return read_json(p)
        except (json.JSONDecodeError, OSError):
            return None

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.file(METRICS))

    def evals(self) -> list[dict[str, Any]]:
        return read_jsonl(self.file(EVALS))

    def read_state(
        self, now: float | None = None, stale_after: float = HEARTBEAT_STALE_S
    ) -> RunState:
        if self.file(RESULT).exists():
            return RunState.COMPLETE
        failure = self.failure()
        if failure is not None:
            return RunState.PRUNED if failure.get("pruned") else RunState.FAILED
        hb = self.heartbeat()
        if hb is None:
            return RunState.PENDING
        now = time.time() if now is None else now
        if now - float(hb.get("time", 0.0)) > stale_after:
            return RunState.LOST
        return RunState.RUNNING

    def write_failure(self, cause: str, log_tail: str = "", pruned: bool = False,
                      **extra: Any) -> None:
        atomic_write_json(
            self.file(FAILURE),
            {"cause": cause, "log_tail": log_tail, "time": time.time(), "pruned": pruned, **extra},
        )

    def reset_for_retry(self) -> None:
        """Clear the outcome of a failed or lost attempt; logs of that attempt are kept aside."""
        for name in (FAILURE, HEARTBEAT, RESULT):
            p = self.file(name)
            if p.exists():
                p.unlink()
        # Earlier attempts' logs are evidence; move them instead of deleting them. A retry
        # trains from scratch: the times of the attempts before it go aside with them.
        self._set_aside((METRICS, EVALS, WORKER_LOG, INTERMEDIATE, DECISIONS, ATTEMPT,
                         ATTEMPTS, LAUNCH))
        shutil.rmtree(self.file(CHECKPOINTS), ignore_errors=True)

    def prepare_resume(self) -> None:
        """Make a lost run ready to go again, resuming from its last checkpoint if any.

        With a checkpoint, metrics.jsonl stays (the worker drops rows past the checkpoint
        step); without one the attempt starts over and its logs are set aside. The attempts'
        times (attempt.json, attempts.jsonl) stay: time a lost attempt spent is the run's.
        """
        for name in (FAILURE, HEARTBEAT):
            p = self.file(name)
            if p.exists():
                p.unlink()
        has_ckpt = any(self.file(CHECKPOINTS).glob("checkpoint-*/trainer_state.json"))
        self._set_aside((EVALS, WORKER_LOG) if has_ckpt else (METRICS, EVALS, WORKER_LOG))

    def record_process(self, submitted_at: float, exited_at: float, returncode: int,
                       argv: list[str]) -> None:
        """launch.json: this process group, and process_wall_s summed over every one seen.

        A resumed run took several process groups; counting the last one only made it
        look as cheap as its final attempt. Groups whose launcher was killed before they
        exited are not seen here (the worker's attempts.jsonl still has their times).
        """
        seen = [a for a in self._process_groups() if a["submitted_at"] != submitted_at]
        seen.append({"submitted_at": submitted_at, "exited_at": exited_at,
                     "returncode": returncode, "wall_s": exited_at - submitted_at})
        atomic_write_json(self.file(LAUNCH), {
            "submitted_at": submitted_at, "exited_at": exited_at, "returncode": returncode,
            "process_wall_s": sum(float(a["wall_s"]) for a in seen), "argv": argv,
            "attempts": seen,
        })

    def _process_groups(self) -> list[dict[str, Any]]:
        """The process groups launch.json recorded (one, if written before it kept a list)."""
        try:
            old = read_json(self.file(LAUNCH))
        except (OSError, ValueError):
            return []
        if not isinstance(old, dict):
            return []
        if isinstance(old.get("attempts"), list):
            return [a for a in old["attempts"] if isinstance(a, dict) and "wall_s" in a]
        if isinstance(old.get("process_wall_s"), int | float):
            return [{"submitted_at": old.get("submitted_at"), "exited_at": old.get("exited_at"),
                     "returncode": old.get("returncode"), "wall_s": old["process_wall_s"]}]
        return []

    def _set_aside(self, names: tuple[str, ...]) -> None:
        attempt = 0
        while self.file(f"attempt-{attempt}").exists():
            attempt += 1
        old = [n for n in names if self.file(n).exists()]
        if old:
            keep = self.file(f"attempt-{attempt}")
            keep.mkdir()
            for n in old:
                os.replace(self.file(n), keep / n)


def finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
