"""Time accounting over a run's attempts: set-up, training loop, evaluation, wall time.

A run may take several attempts (killed, lost, preempted and requeued), each resuming
from the last checkpoint, so its figures sum every attempt, not the last one's. Rank 0
keeps the live attempt's record in ``attempt.json``, rewritten with every heartbeat and
at each phase, so a killed attempt leaves its times behind (to within a heartbeat).
An attempt that ends in its own process appends its record to ``attempts.jsonl``; the
next attempt appends one that was killed (outcome ``interrupted``) before it starts.
Each record carries an id and readers keep the last line per id, so a kill between the
append and the removal of attempt.json counts that attempt once.

Per attempt: ``setup_s`` (process start to the first training step: imports, model
load, tokenisation, the Trainer's own preparation such as DeepSpeed's engine and op
builds, loading the checkpoint), ``train_s`` (the training loop, periodic evaluations
and checkpoints included), ``tokens`` (input tokens the loop processed in this attempt,
steps redone after a kill included, so tokens / train_s is the speed actually reached),
``eval_s`` / ``save_s`` (the final evaluation and save) and ``started_at`` /
``last_seen`` (wall time).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from transformers import TrainerCallback

from ftsweep.rundir import (
    ATTEMPT,
    ATTEMPTS,
    JsonlAppender,
    RunDir,
    atomic_write_json,
    read_json,
    read_jsonl,
)


class Attempt:
    """This process's attempt at a run (rank 0 only)."""

    def __init__(self, run: RunDir, started: float):
        self.run = run
        self._lock = threading.Lock()
        host, pid = socket.gethostname(), os.getpid()
        # every key exists from the start: the heartbeat thread may save at any moment
        self.record: dict[str, Any] = {
            "id": f"{host}:{pid}:{started:.6f}",
            "host": host,
            "pid": pid,
            "started_at": started,
            "last_seen": started,
            "outcome": "running",
            "setup_s": None,
            "train_s": 0.0,
            "tokens": 0,
            "first_step": None,
            "last_step": None,
            "eval_s": 0.0,
            "save_s": 0.0,
        }

    @classmethod
    def begin(cls, run: RunDir, started: float) -> Attempt:
        close_interrupted(run)
        attempt = cls(run, started)
        attempt.save()
        return attempt

    def update(self, **values: Any) -> None:
        with self._lock:
            self.record.update(values)

    def save(self) -> None:
        # Written under the lock: an older snapshot never replaces a newer one.
        with self._lock:
            self.record["last_seen"] = time.time()
            atomic_write_json(self.run.file(ATTEMPT), dict(self.record))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self.record["last_seen"] = time.time()
            return _settled(dict(self.record))

    def end(self, outcome: str) -> None:
        self.update(outcome=outcome)
        _append(self.run, self.snapshot())
        self.run.file(ATTEMPT).unlink(missing_ok=True)


def _settled(rec: dict[str, Any]) -> dict[str, Any]:
    # An attempt that never reached the loop spent all its time setting up.
    if rec.get("setup_s") is None:
        rec["setup_s"] = max(0.0, float(rec["last_seen"]) - float(rec["started_at"]))
    return rec


def _append(run: RunDir, rec: dict[str, Any]) -> None:
    log = JsonlAppender(run.file(ATTEMPTS))
    try:
        log.write(rec)
    finally:
        log.close()


def close_interrupted(run: RunDir) -> None:
    """Append the record an earlier, killed attempt left in attempt.json."""
    live = run.file(ATTEMPT)
    if not live.exists():
        return
    try:
        rec = read_json(live)
    except (ValueError, OSError):
        rec = None  # written atomically, so only a foreign file gets here
    if isinstance(rec, dict) and "id" in rec:
        rec["outcome"] = "interrupted"
        _append(run, _settled(rec))
    live.unlink(missing_ok=True)


def attempt_records(run: RunDir) -> list[dict[str, Any]]:
    """The ended attempts, the last record per id, in the order they were first seen."""
    last: dict[str, dict[str, Any]] = {}
    for rec in read_jsonl(run.file(ATTEMPTS)):
        last[str(rec.get("id"))] = rec
    return list(last.values())


def totals(run: RunDir, current: dict[str, Any]) -> dict[str, Any]:
    """The run's figures over every attempt, this one (``current``) included."""
    recs = [r for r in attempt_records(run) if r.get("id") != current["id"]] + [current]

    def total(key: str) -> float:
        return sum(float(r.get(key) or 0.0) for r in recs)

    train_s, tokens = total("train_s"), total("tokens")
    return {
        "attempts": len(recs),
        "started_at": min(float(r["started_at"]) for r in recs),
        "wall_time_s": sum(float(r["last_seen"]) - float(r["started_at"]) for r in recs),
        "setup_time_s": total("setup_s"),
        "train_time_s": train_s,
        "tokens_per_s": tokens / train_s if train_s > 0 else 0.0,
    }


class LoopClock(TrainerCallback):
    """Times the training loop apart from set-up, into the attempt's record."""

    def __init__(self, attempt: Attempt | None, started: float):
        self.attempt, self.started = attempt, started
        self._t0 = 0.0
        self._tokens0 = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        now = time.time()
        self._t0, self._tokens0 = now, int(state.num_input_tokens_seen or 0)
        if self.attempt is not None:
            self.attempt.update(
                setup_s=now - self.started,
                first_step=state.global_step,
                last_step=state.global_step,
            )
            self.attempt.save()

    def _tick(self, state: Any) -> None:
        if self.attempt is not None:
            self.attempt.update(
                train_s=time.time() - self._t0,
                last_step=state.global_step,
                tokens=int(state.num_input_tokens_seen or 0) - self._tokens0,
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._tick(state)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # the times up to a checkpoint reach the disk with it, whatever the heartbeat's pace
        if self.attempt is not None:
            self.attempt.save()

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._tick(state)
        if self.attempt is not None:
            self.attempt.save()
