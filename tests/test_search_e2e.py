"""Search with real training on the shipped model: pruning, relaunch, and a killed launcher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO, experiment_yaml

from ftsweep.cli import main
from ftsweep.search.study import journal_path, open_storage
from ftsweep.store import run_query
from ftsweep.workspace import Workspace

pytestmark = pytest.mark.slow


def cli(ws: Path, *args: str) -> int:
    return main(["--workspace", str(ws), *args])


def study_trials(ws: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(journal_path(Workspace(ws), name.split("/")[0]))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


@pytest.mark.parametrize("processes", [1, 2], ids=["1-process", "ddp-2-processes"])
def test_pruned_trial_stops_early_is_stored_as_pruned_and_not_retried(
    write_exp, tmp_path, processes
):
    # With 2 processes (gloo DDP) rank 0 decides and both ranks must stop at step 2.
    # A grid through the search path: lr 1e-2 first (it completes and sets the median),
    # then lr 1e-7, whose eval loss at the first eval cannot beat it: pruned at step 2.
    search = """\
search:
  sampler: grid
  max_parallel: 1
  objectives: [{metric: exact_match, direction: maximize}]
  pruner: {type: median, n_startup_trials: 1, n_warmup_steps: 0}
  space:
    method:
      - name: lora
        r: 4
        training.lr: {choices: [1.0e-2, 1.0e-7]}
"""
    launch = f"{{num_processes: {processes}, threads_per_process: 1}}"
    text = (
        experiment_yaml("prune", matrix="\n", max_steps=8, launch=launch).replace(
            "logging_every: 2", "logging_every: 2\n  eval_every: 2"
        )
        + search
    )
    exp_file = write_exp(text)
    ws = tmp_path / "ws"
    assert cli(ws, "launch", str(exp_file)) == 0  # a pruned trial is not a failure
    first, second = study_trials(ws, "prune/lora")
    assert first.state == optuna.trial.TrialState.COMPLETE
    assert second.state == optuna.trial.TrialState.PRUNED and second.last_step == 2
    assert set(first.intermediate_values) == {2, 4, 6, 8}
    (run_id,) = second.user_attrs["run_ids"]
    rd = Workspace(ws).run_dir("prune", run_id)
    failure = json.loads(rd.file("failure.json").read_text())
    assert failure["pruned"] is True and failure["step"] == 2 and failure["steps"] == 2
    assert not rd.file("result.json").exists() and not rd.file("artifacts").exists()
    decisions = [json.loads(x) for x in rd.file("decisions.jsonl").read_text().splitlines()]
    assert [(d["step"], d["prune"]) for d in decisions] == [(2, True)]
    _, rows = run_query(
        Workspace(ws),
        "select r.status, t.state, t.last_step from runs r join "
        "trials t on t.run_ids->>'$[0]' = r.run_id order by t.number",
    )
    assert rows == [("complete", "complete", 8), ("pruned", "pruned", 2)]
    # relaunch: nothing trains, nothing is retried, the study keeps its two trials
    before = {p.name: p.stat().st_mtime for p in rd.path.iterdir()}
    assert cli(ws, "launch", str(exp_file)) == 0
    assert len(study_trials(ws, "prune/lora")) == 2
    assert {p.name: p.stat().st_mtime for p in rd.path.iterdir()} == before
    assert cli(ws, "status") == 0


def test_launcher_sigkill_mid_study_then_relaunch_gives_every_trial_once(write_exp, tmp_path):
    search = """\
search:
  sampler: random
  seed: 3
  n_trials: 3
  max_parallel: 1
  objectives: [{metric: exact_match, direction: maximize}]
  pruner: {type: median, n_startup_trials: 10}
  decision_timeout_s: 5
  space:
    method:
      - name: lora
        r: {choices: [4, 8]}
        training.lr: {float: [1.0e-3, 1.0e-2], log: true}
"""
    text = (
        experiment_yaml(
            "kill", matrix="\n", max_steps=80, launch="{threads_per_process: 1}"
        ).replace("logging_every: 2", "logging_every: 2\n  eval_every: 20\n  checkpoint_every: 20")
        + search
    )
    exp_file = write_exp(text)
    ws = tmp_path / "ws"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(exp_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    runs_dir = ws / "runs" / "kill"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:  # the 2nd trial's run is past its first checkpoint
            hbs = (
                [
                    json.loads((p / "heartbeat.json").read_text())
                    for p in runs_dir.glob("*")
                    if (p / "heartbeat.json").exists() and not (p / "result.json").exists()
                ]
                if runs_dir.is_dir()
                else []
            )
            done = len(list(runs_dir.glob("*/result.json"))) if runs_dir.is_dir() else 0
            if done >= 1 and any(h.get("step", 0) >= 30 for h in hbs):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the second trial never reached step 30")
        os.kill(launcher.pid, signal.SIGKILL)  # the launcher only: its worker is orphaned
    finally:
        launcher.wait(timeout=30)
    running = [
        t for t in study_trials(ws, "kill/lora") if t.state == optuna.trial.TrialState.RUNNING
    ]
    assert len(running) == 1  # left dangling by the dead launcher...
    assert cli(ws, "launch", str(exp_file)) == 0
    trials = study_trials(ws, "kill/lora")  # ...and taken up, not duplicated
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    run_ids = [t.user_attrs["run_ids"][0] for t in trials]
    assert len(set(run_ids)) == 3 == len(list(runs_dir.glob("*/result.json")))
    resumed = Workspace(ws).run_dir("kill", run_ids[running[0].number])
    assert json.loads(resumed.file("result.json").read_text())["steps"] == 80
    _, rows = run_query(
        Workspace(ws), "select count(*), count(distinct (run_id, step, name)) from metrics"
    )
    assert rows[0][0] == rows[0][1] > 0
    _, rows = run_query(Workspace(ws), "select count(*), count(distinct number) from trials")
    assert rows == [(3, 3)]
