"""GPU slots on one node: which devices each run gets (``CUDA_VISIBLE_DEVICES``).

A run with ``num_processes: n`` gets n whole GPUs of its own. Runs share a GPU only when
``launch.gpus_per_run`` is a fraction: with 0.5 two single-process runs share each GPU,
split by memory (nothing enforces the split; size the runs so that they fit). The pool
is pure bookkeeping over an injected device list, so it is tested without a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class GpuPool:
    devices: list[int]
    per_run: float = 1.0  # GPUs per run: an integer, or a fraction of one GPU
    # device → run ids holding a share of it
    holders: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.per_run <= 0:
            raise ValueError(f"gpus_per_run must be positive, got {self.per_run}")
        if self.per_run >= 1 and self.per_run != int(self.per_run):
            raise ValueError(f"gpus_per_run above 1 must be whole GPUs, got {self.per_run}")
        self.holders = {d: [] for d in self.devices}

    @property
    def shares(self) -> int:
        """Runs per GPU: 1 for whole GPUs, 1/per_run for a fraction (0.5 → 2)."""
        return 1 if self.per_run >= 1 else int(math.floor(1 / self.per_run + 1e-9))

    def capacity(self) -> int:
        """How many runs fit at once."""
        if self.per_run >= 1:
            return len(self.devices) // int(self.per_run)
        return len(self.devices) * self.shares

    def acquire(self, run_id: str) -> list[int] | None:
        """Devices for one run, or None when none are free (the caller waits)."""
        if self.per_run >= 1:
            free = [d for d in self.devices if not self.holders[d]]
            need = int(self.per_run)
            if len(free) < need:
                return None
            got = free[:need]
        else:
            open_ = [d for d in self.devices if len(self.holders[d]) < self.shares]
            if not open_:
                return None
            # fill the least used GPU first so shared GPUs stay balanced
            got = [min(open_, key=lambda d: (len(self.holders[d]), d))]
        for d in got:
            self.holders[d].append(run_id)
        return got

    def release(self, run_id: str) -> None:
        for holders in self.holders.values():
            while run_id in holders:
                holders.remove(run_id)


def visible_devices(requested: list[int] | str | None) -> list[int]:
    """The GPUs to use: the requested ids, or every CUDA device this process sees."""
    if isinstance(requested, list):
        return list(requested)
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
