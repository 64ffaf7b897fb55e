"""RunSpecs × what the workspace holds → what launch would do with each run."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from enum import StrEnum

import psutil

from ftsweep.config.load import Experiment, RunSpec
from ftsweep.rundir import RunDir, RunState
from ftsweep.workspace import Workspace


class Action(StrEnum):
    TRAIN = "train"  # new
    SKIP = "skip"  # complete, or failed without --retry-failed
    RETRY = "retry"  # failed, with --retry-failed
    RELAUNCH = "relaunch"  # lost or never started: the earlier attempt left no result
    BUSY = "busy"  # a live worker from an earlier launch still runs it


@dataclass
class PlanItem:
    run: RunSpec
    state: str  # "new" or a RunState
    action: Action
    run_dir: RunDir

    @property
    def will_train(self) -> bool:
        return self.action in (Action.TRAIN, Action.RETRY, Action.RELAUNCH)


def _alive_here(hb: dict | None) -> bool:
    """A fresh heartbeat from a process that still exists on this host."""
    if not hb or hb.get("host") != socket.gethostname():
        return bool(hb)  # another host's heartbeat: trust its freshness
    try:
        proc = psutil.Process(int(hb["pid"]))
        # A killed worker whose parent died too can linger as a zombie until reaped.
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, KeyError, ValueError):
        return False
    except psutil.AccessDenied:
        return True


def plan(exp: Experiment, ws: Workspace, retry_failed: bool = False) -> list[PlanItem]:
    items = []
    stale = exp.spec.launch.heartbeat_timeout_s
    for run in exp.runs:
        rd = ws.run_dir(exp.spec.experiment, run.run_id)
        if not rd.exists():
            items.append(PlanItem(run, "new", Action.TRAIN, rd))
            continue
        state = rd.read_state(stale_after=stale)
        alive = state in (RunState.RUNNING, RunState.LOST) and _alive_here(rd.heartbeat())
        if state == RunState.RUNNING and not alive:
            state = RunState.LOST
        elif state == RunState.LOST and alive:
            # A late heartbeat from a worker that still exists (a stalled filesystem, a
            # suspended machine): relaunching would put two workers in one run directory.
            state = RunState.RUNNING
        action = {
            RunState.COMPLETE: Action.SKIP,
            RunState.PRUNED: Action.SKIP,
            RunState.FAILED: Action.RETRY if retry_failed else Action.SKIP,
            RunState.LOST: Action.RELAUNCH,
            RunState.PENDING: Action.RELAUNCH,
            RunState.RUNNING: Action.BUSY,
        }[state]
        items.append(PlanItem(run, str(state), action, rd))
    return items
