"""RunSpecs × what the workspace holds → what launch would do with each run."""

from __future__ import annotations

import os
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any

from ftsweep.config.load import Experiment, RunSpec
from ftsweep.rundir import SPEC, RunDir, RunState, pid_alive
from ftsweep.workspace import Workspace, safe_name


class Action(StrEnum):
    TRAIN = "train"  # new
    SKIP = "skip"  # complete, or failed without --retry-failed
    RETRY = "retry"  # failed, with --retry-failed
    RELAUNCH = "relaunch"  # lost or never started: the earlier attempt left no result
    BUSY = "busy"  # a live worker from an earlier launch still runs it


class PlanItem:
    """One run of the plan: its state ("new" or a RunState), what launch would do, and
    its run directory (built on first use: a 100k-run plan spent ~a fifth of its time
    making Paths that `ftsweep plan` never looks at)."""

    def __init__(
        self,
        run: RunSpec,
        state: str,
        action: Action,
        run_dir: RunDir | None = None,
        *,
        exp_dir: Path | None = None,
    ):
        if run_dir is None and exp_dir is None:
            raise TypeError("PlanItem needs run_dir or exp_dir")
        self.run, self.state, self.action = run, state, action
        self._run_dir, self._exp_dir = run_dir, exp_dir

    @property
    def run_dir(self) -> RunDir:
        if self._run_dir is None:
            assert self._exp_dir is not None
            self._run_dir = RunDir(self._exp_dir / safe_name(self.run.run_id))
        return self._run_dir

    @property
    def will_train(self) -> bool:
        return self.action in (Action.TRAIN, Action.RETRY, Action.RELAUNCH)

    def __repr__(self) -> str:
        return f"PlanItem({self.run.run_id}, {self.state}, {self.action})"


def _alive_here(hb: dict | None) -> bool:
    """A heartbeat from a process that still exists on this host (or from another host,
    whose processes we cannot see: then True, and its freshness decides)."""
    if not hb or hb.get("host") != socket.gethostname():
        return bool(hb)
    return "pid" in hb and pid_alive(hb["pid"])


def live_state(rd: RunDir, stale_after: float) -> RunState:
    """``read_state`` (a fresh heartbeat whose pid is gone on this host is already lost
    there), except that a late heartbeat whose worker still lives on this host is running.
    Another host's processes cannot be seen: its heartbeat's age alone decides."""
    state = rd.read_state(stale_after=stale_after)
    if state == RunState.LOST:
        hb = rd.heartbeat()
        if hb and hb.get("host") == socket.gethostname() and _alive_here(hb):
            # A late heartbeat from a worker that still exists (a stalled filesystem, a
            # suspended machine): relaunching would put two workers in one run directory.
            return RunState.RUNNING
    return state


def _not_the_runs_fault(rd: RunDir) -> bool:
    """A failure that says nothing about the run: its result.json is unreadable, or the
    disk was full. Relaunch trains it again without --retry-failed."""
    failure = rd.failure() or {}
    return bool(failure.get("corrupt_result") or failure.get("disk_full"))


def _with_spec(exp_dir: Path) -> set[str]:
    """Names of the run directories that hold a spec.json (one listing, not a stat per run)."""
    try:
        with os.scandir(exp_dir) as entries:
            dirs = [e.name for e in entries if e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {name for name in dirs if (exp_dir / name / SPEC).exists()}


def plan(exp: Experiment, ws: Workspace, retry_failed: bool = False) -> list[PlanItem]:
    """What launch would do with each run. A stage (``model.from_run``) is bound to its
    parent run here first; while ``select: best`` waits for the parent to train, the
    stage has no runs yet (``exp.pending``; `ftsweep plan` shows the chain)."""
    if exp.stage is not None:
        from ftsweep.config.stages import bind

        bind(exp, ws)
    items = []
    stale = exp.spec.launch.heartbeat_timeout_s
    exp_dir = ws.run_dir(exp.spec.experiment, "x").path.parent
    existing = _with_spec(exp_dir)
    for run in exp.runs:
        name = safe_name(run.run_id)
        if name not in existing:
            items.append(PlanItem(run, "new", Action.TRAIN, exp_dir=exp_dir))
            continue
        rd = RunDir(exp_dir / name)
        state = live_state(rd, stale)
        action = {
            RunState.COMPLETE: Action.SKIP,
            RunState.PRUNED: Action.SKIP,
            RunState.FAILED: Action.RETRY if retry_failed else Action.SKIP,
            RunState.LOST: Action.RELAUNCH,
            RunState.PENDING: Action.RELAUNCH,
            RunState.RUNNING: Action.BUSY,
        }[state]
        if action == Action.SKIP and state == RunState.FAILED and _not_the_runs_fault(rd):
            action = Action.RELAUNCH
        items.append(PlanItem(run, str(state), action, rd))
    return items


def chain(exp: Experiment, ws: Workspace) -> list[dict[str, Any]]:
    """The stages above ``exp``, root first: each parent experiment, its runs by state,
    and the run its child starts from (None: selected after the parent trains)."""
    out: list[dict[str, Any]] = []
    while exp.stage is not None:
        stage = exp.stage
        items = plan(stage.parent, ws)
        states: dict[str, int] = {}
        for i in items:
            states[i.state] = states.get(i.state, 0) + 1
        out.insert(
            0,
            {
                "child": exp.spec.experiment,
                "parent": stage.parent.spec.experiment,
                "file": str(stage.file),
                "runs": len(items),
                "states": states,
                "to_train": sum(i.will_train for i in items),
                "select": stage.select,
                "selected": stage.run_id,
                "how": stage.how,
                "warnings": list(stage.warnings),
            },
        )
        exp = stage.parent
    return out
