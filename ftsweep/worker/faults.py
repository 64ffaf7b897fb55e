"""Deterministic fault injection, for the tests that kill a run at each phase.

``FTSWEEP_FAULT=<action>:<point>`` makes the worker act on itself when it reaches
``point``: ``kill`` (SIGKILL: dies on the spot, nothing recorded) or ``stop`` (SIGSTOP:
frozen exactly there, so a test can then kill the launcher and the worker together, as a
lost machine would). Points, in the order a run reaches them:

    step-N     after optimizer step N, before that step's log, evaluation and checkpoint
    trained    training returned; the final checkpoint is on disk
    evaluate   inside the final evaluation, after the per-example losses
    result     result.json written

Unset (always, outside tests) each point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from transformers import TrainerCallback

ENV = "FTSWEEP_FAULT"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def at(point: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    action, _, wanted = spec.partition(":")
    if wanted == point:
        os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)


class StepFaults(TrainerCallback):
    """The ``step-N`` points (added to the Trainer only when ``enabled()``)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        at(f"step-{state.global_step}")
