"""Runs that a worker of an earlier launch still trains, and that no executor could adopt.

The launcher names them at once (pid, host, step) and waits for them instead of exiting
1 in silence: a run that ends is counted like its own, and a run whose worker died
(heartbeat stale, or its pid gone on this host) goes into the launcher's queue and is
resumed from its checkpoint. Liveness is ``plan.live_state``, the rule the plan used.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from ftsweep.plan import Action, PlanItem, live_state
from ftsweep.rundir import RunState


def _where(item: PlanItem) -> str:
    hb = item.run_dir.heartbeat() or {}
    where = f"pid {hb.get('pid', '?')} on {hb.get('host', '?')}"
    return f"{item.run.run_id} ({where}, step {hb.get('step', '?')}/{hb.get('max_steps', '?')})"


class BusyWatch:
    def __init__(self, items: list[PlanItem], stale_after: float):
        self.items = list(items)
        self.stale_after = stale_after

    def announce(self, console: Any) -> None:
        if self.items:
            console.print(
                f"[yellow]{len(self.items)} run(s) are still being trained by workers of an "
                f"earlier launch[/], which this launcher cannot adopt: "
                f"{escape(', '.join(_where(i) for i in self.items))}. Waiting for them; a run "
                "whose worker dies is resumed here (Ctrl-C stops waiting; `ftsweep cancel` "
                "stops them)",
                highlight=False,
            )

    def pending(self) -> list[str]:
        return [i.run.run_id for i in self.items]

    def poll(self) -> list[tuple[PlanItem, RunState]]:
        """The watched runs that are no longer running, with their state; a lost one comes
        back with ``Action.RELAUNCH`` for the launcher to queue."""
        done: list[tuple[PlanItem, RunState]] = []
        for item in list(self.items):
            state = live_state(item.run_dir, self.stale_after)
            if state == RunState.RUNNING:
                continue
            self.items.remove(item)
            if state in (RunState.LOST, RunState.PENDING):
                item.action = Action.RELAUNCH
            done.append((item, state))
        return done
