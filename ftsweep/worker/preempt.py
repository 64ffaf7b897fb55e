"""Stop cleanly on SIGUSR1: a scheduler's warning that the time limit or a preemption is
near (Slurm's ``--signal``). The worker saves a checkpoint at the next step, stops, and
marks the run directory (``preempted.json``) so the job requeues itself and resumes.

Every rank gets the signal (it goes to the run's process group), but not at the same
step; with several processes the flag is max-reduced each step so all ranks stop at the
same one and no collective is left waiting.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from transformers import TrainerCallback

from ftsweep.rundir import PREEMPTED, RunDir, atomic_write_json


class PreemptionCallback(TrainerCallback):
    def __init__(self) -> None:
        self.requested = False
        self.stopped_at: int | None = None

    def install(self) -> PreemptionCallback:
        signal.signal(signal.SIGUSR1, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if _any_rank(self.requested):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = int(state.global_step)

    def record(self, run: RunDir) -> None:
        atomic_write_json(run.file(PREEMPTED), {"step": self.stopped_at, "time": time.time()})


def _any_rank(flag: bool) -> bool:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    device = "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
