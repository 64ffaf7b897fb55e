"""The Executor interface: where worker commands run.

Contract for implementations:

- ``submit(job)`` starts the job and returns at once; it never blocks on the run.
- ``poll()`` returns the jobs that finished since the last call, each with its exit
  code, exactly once. A job that could not be started is reported as finished with a
  non-zero code, never raised, so one bad run cannot stop a sweep.
- ``cancel_all()`` stops every running job and its children (a run is a process group:
  `accelerate launch` plus one worker per rank).
- ``capacity`` is how many jobs may run at once; the launcher never exceeds it.
- Jobs write only into their run directory; the executor captures their output in
  ``job.log_path``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    run_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    started_at: float = 0.0
    handle: object = field(default=None, repr=False)


class Executor(ABC):
    name: str
    capacity: int

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def poll(self) -> list[tuple[Job, int]]: ...

    @abstractmethod
    def cancel_all(self) -> None: ...

    def running(self) -> int:
        """How many submitted jobs have not been reported finished yet."""
        return 0
