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
                       (prediction and reference are the compared answers: extracted ones
                       with eval.answer_extraction, the first sample's when there are several)
    generations.jsonl  the final evaluation's raw text, one example a line:
                       {"split", "example_id", "reference", "reference_answer",
                        "samples": [raw text per sample], "answers": [extracted per sample]}
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
import socket
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

SPEC = "spec.json"
PROVENANCE = "provenance.json"
METRICS = "metrics.jsonl"
EVALS = "evals.jsonl"
GENERATIONS = "generations.jsonl"
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

# A heartbeat older than this means the worker is gone (killed, OOM, machine lost),
# unless the heartbeat carries the experiment's own limit (stale_after_s).
HEARTBEAT_STALE_S = 60.0
# How the launcher tells the worker its experiment's launch.heartbeat_timeout_s.
STALE_AFTER_ENV = "FTSWEEP_HEARTBEAT_TIMEOUT_S"


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
    """Write JSON so that readers see the old file or the new one, never half of one.

    The temporary name is per process and thread: two threads writing the same file (the
    heartbeat thread and the training loop) must not rename each other's half-written one.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
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
        """The result, or None when there is none or it cannot be read (``corrupt_result``)."""
        p = self.file(RESULT)
        if not p.exists():
            return None
        try:
            result = read_json(p)
        except (OSError, ValueError):
            return None
        return result if isinstance(result, dict) else None

    def corrupt_result(self) -> str | None:
        """Why result.json exists but is not a result (torn, garbage, not an object); None
        when it is fine or absent. Such a run is failed, and relaunch trains it again."""
        p = self.file(RESULT)
        try:
            result = read_json(p)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return (
            None if isinstance(result, dict) else f"a JSON {type(result).__name__}, not an object"
        )

    def failure(self) -> dict[str, Any] | None:
        """failure.json; for a corrupt result.json without one, a failure saying so."""
        p = self.file(FAILURE)
        if p.exists():
            return read_json(p)
        why = self.corrupt_result()
        if why is None:
            return None
        return {
            "cause": f"result.json is corrupt ({why}); `ftsweep launch` trains the run "
            "again and keeps the file in an attempt-N folder",
            "log_tail": "",
            "pruned": False,
            "corrupt_result": True,
        }

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

    def read_state(self, now: float | None = None, stale_after: float | None = None) -> RunState:
        """The run's state from its files. A heartbeat is stale after ``stale_after``
        seconds (default: the limit the heartbeat carries, else HEARTBEAT_STALE_S); one
        whose worker pid is on this host and gone is lost at once."""
        if self.file(RESULT).exists() and self.corrupt_result() is None:
            return RunState.COMPLETE
        failure = self.failure()
        if failure is not None:
            return RunState.PRUNED if failure.get("pruned") else RunState.FAILED
        hb = self.heartbeat()
        if hb is None:
            return RunState.PENDING
        now = time.time() if now is None else now
        if stale_after is None:
            stale_after = _float(hb.get("stale_after_s")) or HEARTBEAT_STALE_S
        if now - float(hb.get("time", 0.0)) > stale_after:
            return RunState.LOST
        if hb.get("host") == socket.gethostname() and not pid_alive(hb.get("pid")):
            return RunState.LOST  # its worker is gone: no need to wait for the limit
        return RunState.RUNNING

    def write_failure(
        self, cause: str, log_tail: str = "", pruned: bool = False, **extra: Any
    ) -> None:
        atomic_write_json(
            self.file(FAILURE),
            {"cause": cause, "log_tail": log_tail, "time": time.time(), "pruned": pruned, **extra},
        )

    def reset_for_retry(self) -> None:
        """Make a failed run ready to go again: like a lost one, from its last checkpoint.

        Checkpoints are never deleted (a retried run resumes where it stopped, also after
        ``--retry-failed``); the failed attempt's outcome and logs move to attempt-N/.
        """
        self.prepare_resume(search_files=True)

    def prepare_resume(self, search_files: bool = False) -> None:
        """Make a lost (or failed) run ready to go again, resuming from its last checkpoint.

        With a checkpoint, metrics.jsonl stays (the worker drops rows past the checkpoint
        step); without one the attempt starts over and its logs are set aside. The last
        attempt's failure.json and a corrupt result.json are evidence: set aside too.
        ``search_files``: without a checkpoint, a search's pruning handshake starts over.
        The attempts' times (attempt.json, attempts.jsonl) and launch.json stay: time a
        lost or failed attempt spent is the run's.
        """
        p = self.file(HEARTBEAT)
        if p.exists():
            p.unlink()
        has_ckpt = any(self.file(CHECKPOINTS).glob("checkpoint-*/trainer_state.json"))
        names = [FAILURE, RESULT, EVALS, WORKER_LOG]
        if not has_ckpt:
            names += [METRICS, INTERMEDIATE, DECISIONS] if search_files else [METRICS]
        self._set_aside(tuple(names))

    def record_process(
        self, submitted_at: float, exited_at: float, returncode: int, argv: list[str]
    ) -> None:
        """launch.json: this process group, and process_wall_s summed over every one seen.

        A resumed run took several process groups; counting the last one only made it
        look as cheap as its final attempt. Groups whose launcher was killed before they
        exited are not seen here (the worker's attempts.jsonl still has their times).
        """
        seen = [a for a in self._process_groups() if a["submitted_at"] != submitted_at]
        seen.append(
            {
                "submitted_at": submitted_at,
                "exited_at": exited_at,
                "returncode": returncode,
                "wall_s": exited_at - submitted_at,
            }
        )
        atomic_write_json(
            self.file(LAUNCH),
            {
                "submitted_at": submitted_at,
                "exited_at": exited_at,
                "returncode": returncode,
                "process_wall_s": sum(float(a["wall_s"]) for a in seen),
                "argv": argv,
                "attempts": seen,
            },
        )

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
            return [
                {
                    "submitted_at": old.get("submitted_at"),
                    "exited_at": old.get("exited_at"),
                    "returncode": old.get("returncode"),
                    "wall_s": old["process_wall_s"],
                }
            ]
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


def _float(x: Any) -> float | None:
    try:
        return float(x) if x is not None else None
    except (TypeError, ValueError):
        return None


def pid_alive(pid: Any) -> bool:
    """Whether a process of this host with this pid exists and is not a zombie (a killed
    worker whose parent has not reaped it still answers signal 0). Unknown → alive."""
    try:
        pid = int(pid)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except (TypeError, ValueError, OverflowError, OSError):
        return True  # no usable pid: leave it to the heartbeat's age
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # "pid (comm) S ...": the state follows the last ")" (comm may hold one)
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): signal 0 is all we know


def finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
