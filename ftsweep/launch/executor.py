"""The Executor interface: where worker commands run (a plugin kind, like methods).

Contract for implementations (held by tests/test_executors.py, one suite for all):

- ``submit(job)`` starts (or queues) the job and returns at once; it never blocks on
  the run. It sets ``job.job_id``, the executor's own id of the job (a process group on
  this host, a Slurm job id), which the launcher records in the run directory so that a
  later launcher can reattach to it.
- ``poll()`` returns the jobs that finished since the last call, each with its exit
  code, exactly once. A job that could not be started is reported as finished with a
  non-zero code, never raised, so one bad run cannot stop a sweep. When the executor
  knows why a job ended (Slurm's TIMEOUT, OUT_OF_MEMORY, ...), it sets ``job.reason``.
- ``running()`` is how many submitted (or reattached) jobs have not been reported yet.
- ``cancel_all()`` stops every job of this launcher and all their processes (a run is a
  process group: `accelerate launch` plus one worker per rank).
- ``reattach(job)`` takes over a job that an earlier launcher submitted (its
  ``job.job_id`` comes from the run directory): True if it still runs, and ``poll()``
  then reports it like its own; False if it is gone (the run is lost and relaunched).
- ``cancel(job_ids)`` stops jobs of an earlier launcher (``ftsweep cancel``).
- ``capacity`` is how many jobs may run at once; the launcher never exceeds it.
- ``detachable``: whether submitted jobs run on after the launcher exits
  (``launch --detach``): a scheduler's jobs do, a local process group needs its launcher.
- ``max_machines``: how many machines one job may span (``launch.num_machines``): 1 for
  an executor that runs a job on this host; a cluster's can start a rank per node.
- Jobs write only into their run directory; the executor captures their output in
  ``job.log_path``.

No method has a default: an executor states each behaviour.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

# Placeholders in a multi-machine job's argv that the executor fills in on each machine:
# its rank, and the first machine's address and a port there (launcher.worker_command).
NODE_RANK, MAIN_ADDR, MAIN_PORT = "{node_rank}", "{main_addr}", "{main_port}"


@dataclass
class Job:
    run_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    started_at: float = 0.0
    handle: object = field(default=None, repr=False)
    num_processes: int = 1  # GPUs a run needs: one per process (local GPU slots)
    num_machines: int = 1  # machines the job spans; num_processes is the total over them
    job_id: str = ""  # set by submit() or given to reattach()
    reason: str = ""  # why the job ended, when the executor knows more than an exit code


class Executor(ABC):
    name: ClassVar[str]
    detachable: ClassVar[bool]
    max_machines: ClassVar[int]
    capacity: int

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def poll(self) -> list[tuple[Job, int]]: ...

    @abstractmethod
    def running(self) -> int: ...

    @abstractmethod
    def cancel_all(self) -> None: ...

    @abstractmethod
    def reattach(self, job: Job) -> bool: ...

    @abstractmethod
    def cancel(self, job_ids: list[str]) -> None: ...


# name → factory(launch block, workspace root) → Executor
EXECUTORS: dict[str, Callable[[Any, Path], Executor]] = {}


def register(
    name: str,
) -> Callable[[Callable[[Any, Path], Executor]], Callable[[Any, Path], Executor]]:
    """Register an executor factory under ``name`` (its key in ``launch.executor``)."""

    def add(factory: Callable[[Any, Path], Executor]) -> Callable[[Any, Path], Executor]:
        if name in EXECUTORS:
            raise ValueError(f"executor {name!r} registered twice")
        EXECUTORS[name] = factory
        return factory

    return add


def make_executor(name: str, launch: Any, root: Path) -> Executor:
    """The executor named ``name`` built from the experiment's launch block."""
    import ftsweep.launch.local  # noqa: F401 - registers itself
    import ftsweep.launch.slurm  # noqa: F401 - registers itself

    if name not in EXECUTORS:
        from ftsweep.errors import FtsweepError, did_you_mean

        raise FtsweepError(
            f"unknown executor {name!r}{did_you_mean(name, EXECUTORS)}; "
            f"valid: {', '.join(sorted(EXECUTORS))}"
        )
    return EXECUTORS[name](launch, root)
