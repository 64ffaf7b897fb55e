"""Trainer hooks: metrics log, heartbeat, early stopping, and the NaN/inf guard.

Only the main process writes: each callback is given ``is_main`` and stays silent
elsewhere, so a DDP run still has exactly one metrics log.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState

from ftsweep.rundir import (
    HEARTBEAT,
    METRICS,
    STALE_AFTER_ENV,
    JsonlAppender,
    RunDir,
    atomic_write_json,
)

# Trainer log keys → our metric names (the store's public vocabulary).
RENAME = {"learning_rate": "lr"}
SKIP = {
    "epoch",
    "total_flos",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_loss",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "num_input_tokens_seen",
    "train_tokens_per_second",
}


class NonFiniteLossError(RuntimeError):
    """Raised at the step where loss or gradient norm stops being finite."""


class GuardedTrainer(Trainer):
    """Trainer that fails the run at the first non-finite loss.

    The stock Trainer replaces NaN/inf losses in its logs by the running average
    (``logging_nan_inf_filter``), which hides a diverged run; we check every step.
    """

    def compute_loss(  # type: ignore[override]
        self, model: Any, inputs: Any, return_outputs: bool = False, **kw: Any
    ) -> Any:
        out: Any = super().compute_loss(model, inputs, return_outputs=return_outputs, **kw)
        loss: torch.Tensor = out[0] if return_outputs else out
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at step {self.state.global_step + 1}; "
                "lower training.lr or set training.max_grad_norm"
            )
        return out


class Progress:
    """What the heartbeat reports; updated by the metrics callback."""

    def __init__(self) -> None:
        self.step = 0
        self.max_steps = 0
        self.loss: float | None = None
        self.started = time.time()
        self.phase = "setup"

    def eta(self) -> float | None:
        if self.step <= 0 or self.max_steps <= 0:
            return None
        rate = (time.time() - self.started) / self.step
        return rate * max(self.max_steps - self.step, 0)


def _stale_after() -> dict[str, float]:
    """The experiment's launch.heartbeat_timeout_s (the launcher passes it), so readers
    without the experiment file (`ftsweep status`) judge this heartbeat by its own limit."""
    try:
        return {"stale_after_s": float(os.environ[STALE_AFTER_ENV])}
    except (KeyError, ValueError):
        return {}


class Heartbeat:
    """A daemon thread that rewrites heartbeat.json every ``interval`` seconds."""

    def __init__(self, run: RunDir, progress: Progress, attempt: Any = None, interval: float = 2.0):
        self.run, self.progress, self.interval = run, progress, interval
        self.attempt = attempt  # worker.attempts.Attempt: its times saved with each beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="heartbeat")

    def beat(self) -> None:
        p = self.progress
        atomic_write_json(
            self.run.file(HEARTBEAT),
            {
                "time": time.time(),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "step": p.step,
                "max_steps": p.max_steps,
                "loss": p.loss,
                "eta_s": p.eta(),
                "phase": p.phase,
                **_stale_after(),
            },
        )
        if self.attempt is not None:
            self.attempt.save()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class MetricsCallback(TrainerCallback):
    """Appends every logged value to metrics.jsonl, flushed per record."""

    def __init__(self, run: RunDir, progress: Progress, is_main: bool):
        self.progress = progress
        self.log = JsonlAppender(run.file(METRICS)) if is_main else None
        self._last: tuple[float, int] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.progress.max_steps = state.max_steps
        self.progress.started = time.time()
        self.progress.phase = "train"
        self._last = (time.time(), state.num_input_tokens_seen or 0)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.progress.step = state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        logs = dict(logs or {})
        grad = logs.get("grad_norm")
        if grad is not None and not math.isfinite(float(grad)):
            raise NonFiniteLossError(f"non-finite gradient norm at step {state.global_step}")
        if "loss" in logs:
            self.progress.loss = float(logs["loss"])
            logs["tokens_per_s"] = self._tokens_per_s(state)
        if self.log is None:
            return
        now = time.time()
        for key, value in logs.items():
            if key in SKIP or not isinstance(value, (int, float)) or value is None:
                continue
            self.log.write(
                {
                    "step": state.global_step,
                    "epoch": state.epoch,
                    "name": RENAME.get(key, key),
                    "value": float(value),
                    "time": now,
                }
            )

    def _tokens_per_s(self, state: Any) -> float:
        now, seen = time.time(), state.num_input_tokens_seen or 0
        t0, s0 = self._last or (now, seen)
        self._last = (now, seen)
        return (seen - s0) / (now - t0) if now > t0 else 0.0

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.progress.phase = "evaluate"
        if self.log is not None:
            self.log.close()
            self.log = None


class EarlyStopping(TrainerCallback, ExportableState):
    """Stops after ``patience`` evals whose eval_loss did not beat the best by ``threshold``.

    Also remembers the best eval so the result can report best as well as final. Its
    state goes into each checkpoint (``ExportableState``), so a resumed run continues
    the same patience count and keeps the same best.
    """

    def state(self) -> dict[str, Any]:
        return {
            "args": {"patience": self.patience, "threshold": self.threshold},
            "attributes": {
                "best": self.best,
                "best_step": self.best_step,
                "best_metrics": self.best_metrics,
                "bad_evals": self.bad_evals,
                "stopped_early": self.stopped_early,
            },
        }

    def __init__(self, patience: int | None, threshold: float):
        self.patience, self.threshold = patience, threshold
        self.best: float | None = None
        self.best_step: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.bad_evals = 0
        self.stopped_early = False

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
    ) -> None:
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        if self.best is None or loss < self.best - self.threshold:
            self.best, self.best_step, self.bad_evals = loss, state.global_step, 0
            self.best_metrics = {
                k: float(v)
                for k, v in metrics.items()
                if k.startswith("eval_") and isinstance(v, (int, float)) and k not in SKIP
            }
        else:
            self.bad_evals += 1
        if self.patience and self.bad_evals >= self.patience:
            control.should_training_stop = True
            self.stopped_early = True
