"""The live view of a sweep: done / failed / total, and step, loss, ETA per running run.

On a terminal it is a rich Live table redrawn from the runs' heartbeats; elsewhere
(CI, pipes) it prints one line per started and finished run.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ftsweep.plan import PlanItem
from ftsweep.rundir import RunState


def _fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _label(item: PlanItem) -> str:
    trial = f"trial {item.run.trial['number']} " if item.run.trial else ""
    return f"{trial}{item.run.method} {_fmt_params(item.run.params)} seed={item.run.seed}"


class LiveView:
    def __init__(self, console: Console | None, items: list[PlanItem], summary: Any):
        self.console = console or Console()
        self.summary = summary
        self.running: dict[str, PlanItem] = {}
        self._live: Live | None = None
        self._label = {i.run.run_id: _label(i) for i in items}

    def __enter__(self) -> LiveView:
        s = self.summary
        if s.total:  # a search-only experiment has no grid runs to announce
            self.console.print(
                f"[bold]{s.total}[/] runs: {s.total - s.skipped} to train, "
                f"{s.skipped} already done or skipped"
            )
        if self.console.is_terminal:
            self._live = Live(self._table(), console=self.console, refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live:
            self._live.update(self._table())
            self._live.__exit__(*exc)

    def started(self, item: PlanItem) -> None:
        self.running[item.run.run_id] = item
        self._label.setdefault(item.run.run_id, _label(item))  # a search trial's run
        if not self._live:
            self.console.print(f"start  {item.run.run_id}  {escape(self._label[item.run.run_id])}")

    def finished(self, item: PlanItem, state: RunState) -> None:
        self.running.pop(item.run.run_id, None)
        if not self._live:
            mark = {
                RunState.COMPLETE: "[green]done[/]  ",
                RunState.PRUNED: "[yellow]pruned[/]",
                RunState.LOST: "[yellow]lost[/]  ",
            }.get(state, "[red]failed[/]")
            extra = ""
            if state != RunState.COMPLETE:
                failure = item.run_dir.failure() or {}
                extra = f"  ({escape(str(failure.get('cause', ''))[:200])})"
            self.console.print(
                f"{mark} {item.run.run_id}  {escape(self._label[item.run.run_id])}{extra}"
            )

    def retrying(self, item: PlanItem, attempt: int, of: int, delay_s: float) -> None:
        """A killed run goes back to the queue (launch/retry.py); said even in the live view."""
        self.running.pop(item.run.run_id, None)
        cause = (item.run_dir.failure() or {}).get("cause", "")
        self.console.print(
            f"[yellow]retry[/] {item.run.run_id}  "
            f"{escape(self._label[item.run.run_id])}: "
            f"{escape(str(cause)[:200])}; retry {attempt} of {of} in "
            f"{delay_s:.0f} s, from its last checkpoint"
        )

    def refresh(self) -> None:
        if self._live:
            self._live.update(self._table())

    def _table(self) -> Table:
        s = self.summary
        done = len(s.complete)
        pruned = f"  pruned {len(s.pruned)}" if s.pruned else ""
        t = Table(
            title=f"done {done}  failed {len(s.failed)}{pruned}  skipped {s.skipped}  "
            f"total {s.total}"
        )
        for col in ("run", "config", "step", "loss", "eta"):
            t.add_column(col)
        for run_id, item in self.running.items():
            hb = item.run_dir.heartbeat() or {}
            step = f"{hb.get('step', 0)}/{hb.get('max_steps') or '?'}"
            loss = f"{hb['loss']:.3f}" if hb.get("loss") is not None else "-"
            eta = f"{hb['eta_s']:.0f}s" if hb.get("eta_s") is not None else hb.get("phase", "-")
            t.add_row(run_id, escape(self._label[run_id]), step, loss, str(eta))
        return t
