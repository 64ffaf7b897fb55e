"""The ask-and-tell loop of a search, driven by the launcher's executor slots.

Each trial maps to content-addressed runs, one per seed (``seeds_per_trial``); a run
that already exists is reused, not trained again. The launcher asks ``next_item`` for
work whenever a slot frees, reports every finished run to ``finished``, and calls
``serve`` on each turn of its loop to answer the workers' pruning requests.

Pruning (one objective only) is a synchronous handshake through files of the run
directory, so a decision never depends on timing and a study replays exactly:

    worker:   appends {"step", "value"} to intermediate.jsonl at each eval, then waits
    launcher: reports the value to the trial, asks its pruner, appends
              {"step", "prune"} to decisions.jsonl
    worker:   reads its decision (all ranks get rank 0's) and stops if told to

The value is the eval loss, negated when the objective is maximised, so that "higher is
better" means the same for the pruner as for the study. Only a trial's first seed
reports; its other seeds train after it completes.

Relaunch after a killed launcher: trials it left RUNNING are taken up again. Their runs
are rebuilt from the trial's parameters; finished runs are read, a worker still alive
from the dead launcher is stopped, and unfinished runs resume from their checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from ftsweep.config.load import Experiment, RunSpec
from ftsweep.plan import Action, PlanItem, _alive_here
from ftsweep.rundir import (
    DECISIONS,
    INTERMEDIATE,
    JsonlAppender,
    RunDir,
    RunState,
    atomic_write_json,
    read_jsonl,
)
from ftsweep.search.checks import COST_METRICS
from ftsweep.search.prior import enqueue_grid, warm_start
from ftsweep.search.study import Handle, ask_seed, decode_values, make_sampler, open_handles
from ftsweep.search.summary import SOURCE, summarize, summary_path
from ftsweep.workspace import Workspace


@dataclass
class ActiveTrial:
    handle: Handle
    trial: optuna.Trial
    runs: list[RunSpec]
    states: dict[str, RunState] = field(default_factory=dict)
    submitted: set[str] = field(default_factory=set)

    @property
    def number(self) -> int:
        return self.trial.number


class SearchDriver:
    def __init__(self, exp: Experiment, ws: Workspace, parallel: int, retry_failed: bool = False):
        assert exp.spec.search is not None and exp.search is not None
        self.exp, self.ws, self.search = exp, ws, exp.spec.search
        self.retry_failed = retry_failed
        self.max_parallel = self.search.max_parallel or parallel
        self.handles = open_handles(
            ws,
            exp.spec.experiment,
            self.search,
            exp.search,
            exp.spec.training.max_steps,
            self.max_parallel > 1,
        )
        self.started = time.time()
        self.active: dict[int, ActiveTrial] = {}  # by trial_id
        self.queue: list[PlanItem] = []  # runs of active trials waiting for a slot
        self.offsets: dict[str, int] = {}  # bytes of intermediate.jsonl read, per run
        self.trained: list[str] = []
        self.told = 0
        self.sign = -1.0 if self.search.objectives[0].direction == "maximize" else 1.0
        if self.search.sampler == "grid":
            enqueue_grid(self.handles, self.search.budget)
        if self.search.warm_start:
            warm_start(
                self.handles, self.search.budget, exp.runs, self._run_dir, self._objective_values
            )
        self._recover()

    # -- what the launcher calls -----------------------------------------------------

    def next_item(self) -> PlanItem | None:
        """A run to start now, or None when nothing can start until a run finishes."""
        while not self.queue:
            if len(self.active) >= self.max_parallel or not self._ask():
                return None
        return self.queue.pop(0)

    def finished(self, run_id: str, state: RunState) -> None:
        for at in list(self.active.values()):
            if run_id in {r.run_id for r in at.runs}:
                at.states[run_id] = state
                self._advance(at)

    def serve(self) -> None:
        """Answer every pending pruning request of the running trials."""
        for at in list(self.active.values()):
            first = at.runs[0]
            if first.run_id in at.submitted and first.run_id not in at.states:
                self._decide(at, self._run_dir(first))

    def done(self) -> bool:
        return not self.active and not self.queue and not self._can_ask()

    def stalled(self) -> bool:
        """Active trials with no run queued: only possible while one of theirs still runs."""
        return bool(self.active) and not self.queue

    def publish(self, store: Any) -> None:
        """Trials into the store, and the summary file that `ftsweep status` reads."""
        from ftsweep.store.trials import replace_trials, trial_rows

        rows = trial_rows(self.exp.spec.experiment, [h.study for h in self.handles.values()])
        replace_trials(store.con, self.exp.spec.experiment, rows)
        atomic_write_json(
            summary_path(self.ws, self.exp.spec.experiment),
            summarize(
                self.exp.spec.experiment,
                rows,
                self.search.objectives,
                self._limit(),
                self.search.budget,
            ),
        )

    def owns(self, run_id: str) -> bool:
        return any(run_id in {r.run_id for r in at.runs} for at in self.active.values())

    # -- asking ----------------------------------------------------------------------

    def _counts(self) -> dict[str, int]:
        """Trials ftsweep asked per method (warm-start trials do not use the budget)."""
        counts = {m: 0 for m in self.handles}
        seen: set[int] = set()
        for h in self.handles.values():
            for t in h.study.get_trials(deepcopy=False):
                if t._trial_id in seen or t.state == TrialState.WAITING:
                    continue
                seen.add(t._trial_id)
                if t.user_attrs.get("source", SOURCE) == SOURCE:
                    m = t.user_attrs.get("method") or t.params.get("method") or h.method
                    counts[m] = counts.get(m, 0) + 1
        return counts

    def _limit(self, method: str | None = None) -> int | None:
        """Trials allowed: per method (per_method budget) or in all (shared).

        A grid without n_trials runs every point of its grid once, so with per_method each
        method's budget is its own grid (a grid is exhaustive, not sampled).
        """
        n = self.search.n_trials
        if n is None and self.search.sampler == "grid":
            if method is not None:
                return self.handles[method].space.grid_size()
            sizes = [h.space.grid_size() for h in self.handles.values()]
            n = max(sizes) if self.search.budget == "per_method" else sum(sizes)
        return n

    def _pick_method(self) -> str | None:
        counts = self._counts()
        timed_out = (
            self.search.timeout is not None and time.time() - self.started > self.search.timeout
        )
        if self.search.budget == "shared":
            limit = self._limit()
            if timed_out or (limit is not None and sum(counts.values()) >= limit):
                return None
            return next(iter(self.handles))
        open_ = [m for m in self.handles if (lim := self._limit(m)) is None or counts[m] < lim]
        if not open_:
            return None
        if timed_out and min(counts[m] for m in open_) >= max(counts.values()):
            return None  # finish the round so that every method has as many trials
        return min(open_, key=lambda m: (counts[m], list(self.handles).index(m)))

    def _can_ask(self) -> bool:
        return self._pick_method() is not None

    def _ask(self) -> bool:
        method = self._pick_method()
        if method is None:
            return False
        h = self.handles[method]
        # A sampler built afresh per ask, seeded by the seed, the method and how many
        # trials the study holds: a relaunched launcher continues the same sequence
        # instead of replaying the random start-up trials of the first launch.
        n = len(h.study.get_trials(deepcopy=False))
        sampler = make_sampler(
            self.search, ask_seed(self.search.seed, method, n), self.max_parallel > 1
        )
        for other in self.handles.values():  # shared: every handle is the one study
            if other.study.study_name == h.study.study_name:
                other.study.sampler = sampler
        trial = h.study.ask()
        if self.search.budget == "shared":
            method = trial.suggest_categorical("method", list(self.handles))
            h = self.handles[method]
            trial = optuna.Trial(h.study, trial._trial_id)  # this method's pruner
        values = h.space.sample(trial, h.prefix)
        runs = self._runs_for(h, values, trial.number)
        trial.set_user_attr("method", method)
        trial.set_user_attr("source", SOURCE)
        trial.set_user_attr("run_ids", [r.run_id for r in runs])
        self._activate(ActiveTrial(h, trial, runs))
        return True

    def _runs_for(self, h: Handle, values: dict[str, Any], number: int) -> list[RunSpec]:
        seeds = self.exp.spec.seeds[: self.search.seeds_per_trial]
        runs = self.exp.resolve(h.space.point(values), seeds)
        prune = self.search.pruner.type != "none"
        for i, run in enumerate(runs):
            run.trial = {
                "study": h.study.study_name,
                "number": number,
                "prune": prune and i == 0,
                "decision_timeout_s": self.search.decision_timeout_s,
            }
        return runs

    # -- a trial's life --------------------------------------------------------------

    def _activate(self, at: ActiveTrial) -> None:
        self.active[at.trial._trial_id] = at
        for run in at.runs:  # runs that exist already are reused, whatever their trial
            state = self._existing_state(run)
            if state is not None:
                at.states[run.run_id] = state
        self._advance(at)

    def _existing_state(self, run: RunSpec) -> RunState | None:
        rd = self._run_dir(run)
        if not rd.exists():
            return None
        state = rd.read_state(stale_after=self.exp.spec.launch.heartbeat_timeout_s)
        if state == RunState.FAILED and self.retry_failed:
            return None
        if state in (RunState.COMPLETE, RunState.PRUNED, RunState.FAILED):
            return state
        if _alive_here(rd.heartbeat()) and state == RunState.RUNNING:
            _stop_orphan(rd)  # a worker of a killed launcher: resume it under this one
        return None

    def _advance(self, at: ActiveTrial) -> None:
        first = at.runs[0]
        s0 = at.states.get(first.run_id)
        if s0 is None:
            self._submit(at, [first])
            return
        if s0 == RunState.PRUNED:
            self._replay_intermediate(at, self._run_dir(first))
            self._tell(at, state=TrialState.PRUNED)
            return
        if s0 != RunState.COMPLETE:
            self._tell(at, state=TrialState.FAIL, reason=f"run {first.run_id} {s0}")
            return
        missing = [r for r in at.runs if r.run_id not in at.states]
        if missing:
            self._submit(at, missing)
            return
        bad = [r.run_id for r in at.runs if at.states[r.run_id] != RunState.COMPLETE]
        if bad:
            self._tell(at, state=TrialState.FAIL, reason=f"runs {bad} did not complete")
            return
        values = self._objective_values(at.runs)
        if values is None:
            self._tell(
                at,
                state=TrialState.FAIL,
                reason="an objective metric is missing or not finite in the runs' results",
            )
        else:
            self._tell(at, values=values)

    def _submit(self, at: ActiveTrial, runs: list[RunSpec]) -> None:
        for run in runs:
            if run.run_id in at.submitted:
                continue
            at.submitted.add(run.run_id)
            rd = self._run_dir(run)
            if not rd.exists():
                action, state = Action.TRAIN, "new"
            elif rd.read_state() == RunState.FAILED:
                action, state = Action.RETRY, "failed"
            else:
                action, state = Action.RELAUNCH, "lost"
            self.queue.append(PlanItem(run, state, action, rd))
            self.trained.append(run.run_id)

    def _objective_values(self, runs: list[RunSpec]) -> list[float] | None:
        """Each objective's mean over the runs (seeds), or None if one is missing."""
        out = []
        for obj in self.search.objectives:
            per_run = []
            for run in runs:
                result = self._run_dir(run).result() or {}
                raw = (
                    result if obj.metric in COST_METRICS else result.get("final_eval") or {}
                ).get(obj.metric)
                if not isinstance(raw, int | float) or not math.isfinite(raw):
                    return None
                per_run.append(float(raw))
            out.append(statistics.fmean(per_run))
        return out

    def _tell(
        self,
        at: ActiveTrial,
        values: list[float] | None = None,
        state: TrialState | None = None,
        reason: str = "",
    ) -> None:
        study = at.handle.study
        if reason:
            study._storage.set_trial_user_attr(at.trial._trial_id, "fail_reason", reason)
        study.tell(at.trial, values=values, state=state, skip_if_finished=True)
        self.active.pop(at.trial._trial_id, None)
        self.told += 1

    # -- pruning ---------------------------------------------------------------------

    def _decide(self, at: ActiveTrial, rd: RunDir) -> None:
        path = rd.file(INTERMEDIATE)
        if not path.exists():
            return
        offset = self.offsets.get(rd.run_id, 0)
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a torn last line is read next time
        self.offsets[rd.run_id] = offset + len(complete)
        if not complete:
            return
        decided = {int(d["step"]) for d in read_jsonl(rd.file(DECISIONS))}
        for line in complete.decode("utf-8").splitlines():
            if not line.strip():
                continue
            req = json.loads(line)
            step, value = int(req["step"]), float(req["value"])
            if step in decided:
                continue
            frozen = at.handle.study._storage.get_trial(at.trial._trial_id)
            if step not in frozen.intermediate_values:
                at.trial.report(self.sign * value, step)
            prune = bool(at.trial.should_prune())
            log = JsonlAppender(rd.file(DECISIONS))
            log.write({"step": step, "prune": prune, "time": time.time()})
            log.close()
            decided.add(step)

    def _replay_intermediate(self, at: ActiveTrial, rd: RunDir) -> None:
        """A reused pruned run: give this trial the values it reported before pruning."""
        frozen = at.handle.study._storage.get_trial(at.trial._trial_id)
        for req in read_jsonl(rd.file(INTERMEDIATE)):
            step = int(req["step"])
            if step not in frozen.intermediate_values:
                at.trial.report(self.sign * float(req["value"]), step)

    # -- start-up --------------------------------------------------------------------

    def _recover(self) -> None:
        """Take up the trials a killed launcher left RUNNING (never left dangling)."""
        seen: set[int] = set()
        for h in self.handles.values():
            for t in h.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t._trial_id in seen:
                    continue
                seen.add(t._trial_id)
                method = t.user_attrs.get("method") or t.params.get("method") or h.method
                handle = self.handles.get(method)
                try:
                    assert handle is not None
                    values = decode_values(handle, t.params)
                except (KeyError, AssertionError, ValueError):
                    # Asked but killed before its parameters were all sampled.
                    h.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                    continue
                trial = optuna.Trial(handle.study, t._trial_id)
                if "run_ids" not in t.user_attrs:
                    trial.set_user_attr("method", method)
                    trial.set_user_attr("source", SOURCE)
                runs = self._runs_for(handle, values, t.number)
                self._activate(ActiveTrial(handle, trial, runs))

    def _run_dir(self, run: RunSpec) -> RunDir:
        return self.ws.run_dir(self.exp.spec.experiment, run.run_id)


def _stop_orphan(rd: RunDir) -> None:
    """Stop the process group of a worker whose launcher died (same host only)."""
    hb = rd.heartbeat() or {}
    if hb.get("host") != socket.gethostname():
        return
    try:
        pgid = os.getpgid(int(hb["pid"]))
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline:
            os.killpg(pgid, 0)
            time.sleep(0.2)
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, KeyError, ValueError, PermissionError):
        pass
