"""The launcher's retry policy: a killed worker starts again from its last checkpoint.

The failure is recorded first (``failure.json`` with ``retryable``, written by the
launcher when the worker died without recording one itself); this policy then decides
(STYLE 6). A run is retried at most ``launch.max_retries`` times per launch, after
``retry_backoff_s`` doubled for each further retry. Retrying resets the run directory
with ``RunDir.reset_for_retry``, which keeps checkpoints and sets the failed attempt's
files aside, so the worker resumes and nothing written is lost. Pruned runs and
failures the worker recorded itself are never retried here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ftsweep.plan import Action, PlanItem


@dataclass
class RetryPolicy:
    max_retries: int
    backoff_s: float
    retries: dict[str, int] = field(default_factory=dict)  # run_id → retries so far
    _waiting: list[tuple[float, PlanItem]] = field(default_factory=list)

    def consider(self, item: PlanItem, failure: dict | None) -> float | None:
        """Schedule a retry of a failed run if the policy allows one: the delay, or None."""
        if not failure or not failure.get("retryable") or failure.get("pruned"):
            return None
        done = self.retries.get(item.run.run_id, 0)
        if done >= self.max_retries:
            return None
        self.retries[item.run.run_id] = done + 1
        delay = self.backoff_s * (2**done)
        item.action = Action.RETRY  # the launcher's _prepare: reset_for_retry
        self._waiting.append((time.monotonic() + delay, item))
        return delay

    def due(self) -> list[PlanItem]:
        """The runs whose wait is over, to be submitted now."""
        now = time.monotonic()
        ready = [item for at, item in self._waiting if at <= now]
        self._waiting = [(at, item) for at, item in self._waiting if at > now]
        return ready

    def waiting(self) -> int:
        return len(self._waiting)

    def cancel(self) -> list[PlanItem]:
        """Forget the waiting retries (the launcher stops); their runs stay failed."""
        items, self._waiting = [item for _, item in self._waiting], []
        return items
