"""The worker's side of a search trial's pruning handshake (see ftsweep.search.driver).

At each evaluation rank 0 appends the eval loss to ``intermediate.jsonl`` and waits
for the launcher's answer in ``decisions.jsonl``; every rank then follows rank 0's
answer, so a multi-process run stops on all ranks at the same step. A decision already
on file (a run resumed after a kill) is used as it is, so a replay decides the same.
"""

from __future__ import annotations

import math
import time
from typing import Any

from transformers import TrainerCallback

from ftsweep.rundir import DECISIONS, INTERMEDIATE, JsonlAppender, RunDir, read_jsonl

POLL_S = 0.1


class PruneHandshake(TrainerCallback):
    def __init__(self, run: RunDir, timeout_s: float, is_main: bool, progress: Any = None):
        self.run, self.timeout_s, self.is_main = run, timeout_s, is_main
        self.progress = progress
        self.pruned: dict[str, Any] | None = None  # {"step", "value"} once told to stop
        self.unanswered = 0  # requests the launcher did not answer in time

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
    ) -> None:
        loss = (metrics or {}).get("eval_loss")
        step = int(state.global_step)
        prune = False
        if self.is_main and isinstance(loss, int | float) and math.isfinite(loss):
            prune = self._ask(step, float(loss))
        prune = _from_rank0(prune)
        if prune:
            self.pruned = {"step": step, "value": loss}
            control.should_training_stop = True

    def _decision(self, step: int) -> bool | None:
        for d in read_jsonl(self.run.file(DECISIONS)):
            if int(d.get("step", -1)) == step:
                return bool(d.get("prune"))
        return None

    def _ask(self, step: int, value: float) -> bool:
        known = self._decision(step)
        if known is not None:
            return known
        log = JsonlAppender(self.run.file(INTERMEDIATE))
        log.write({"step": step, "value": value, "time": time.time()})
        log.close()
        phase = getattr(self.progress, "phase", None)
        if self.progress is not None:
            self.progress.phase = "prune decision"
        try:
            deadline = time.time() + self.timeout_s
            while time.time() < deadline:
                known = self._decision(step)
                if known is not None:
                    return known
                time.sleep(POLL_S)
        finally:
            if self.progress is not None and phase is not None:
                self.progress.phase = phase
        # No launcher answered (it was killed): train on; a new launcher adopts the run.
        self.unanswered += 1
        print(
            f"ftsweep: no prune decision for step {step} within {self.timeout_s:g}s; continuing",
            flush=True,
        )
        return False


def _from_rank0(value: bool) -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])
