"""Search (ftsweep/search/): validation, the ask-and-tell driver, budgets, storage.

The driver tests run real Optuna studies through the real launcher with a fake
executor that "trains" by writing a result computed from the run's learning rate, so
sampler behaviour is tested in seconds; test_search_e2e.py trains for real.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO, experiment_yaml

from ftsweep.cli import main
from ftsweep.config.load import load_experiment
from ftsweep.launch.executor import Executor, Job
from ftsweep.launch.launcher import launch
from ftsweep.rundir import RESULT, RunDir, atomic_write_json
from ftsweep.search.study import journal_path, open_storage
from ftsweep.store import run_query
from ftsweep.workspace import Workspace

SPACE = """\
search:
  sampler: {sampler}
  seed: {seed}
  n_trials: {n}
  budget: {budget}
  objectives: [{{metric: exact_match, direction: maximize}}]
  space:
    method:
      - name: lora
        r: {{choices: [4, 8]}}
        training.lr: {{float: [1.0e-4, 1.0e-1], log: true}}
      - name: prefix
        num_virtual_tokens: {{choices: [4, 8]}}
        training.lr: {{float: [1.0e-3, 1.0], log: true}}
"""


def search_yaml(
    name: str = "s",
    *,
    sampler: str = "tpe",
    seed: int = 0,
    n: int = 4,
    budget: str = "per_method",
    extra: str = "",
) -> str:
    return (
        experiment_yaml(name, matrix="\n")
        + SPACE.format(sampler=sampler, seed=seed, n=n, budget=budget)
        + extra
    )


class FakeTrainer(Executor):
    """Finishes each job at once with exact_match peaked at lr = 1e-2 (no training)."""

    name = "fake"
    detachable = False
    max_machines = 1

    def __init__(self, capacity: int = 2):
        self.capacity = capacity
        self._done: list[tuple[Job, int]] = []
        self.submitted: list[str] = []

    def submit(self, job: Job) -> None:
        rd = RunDir(Path(job.argv[-1]))
        spec = rd.spec()
        lr = spec["config"]["training"]["lr"]
        score = math.exp(-((math.log10(lr) + 2.0) ** 2))
        atomic_write_json(
            rd.file(RESULT),
            {"final_eval": {"exact_match": score}, "steps": 10, "trainable_params": 100},
        )
        self.submitted.append(rd.run_id)
        self._done.append((job, 0))

    def poll(self) -> list[tuple[Job, int]]:
        done, self._done = self._done, []
        return done

    def cancel_all(self) -> None:
        self._done = []

    def running(self) -> int:
        return len(self._done)

    def reattach(self, job: Job) -> bool:
        return False  # every job finishes inside submit: nothing outlives a launcher

    def cancel(self, job_ids: list[str]) -> None:
        pass


def run_search(path: Path, ws: Path, capacity: int = 2) -> tuple[FakeTrainer, object]:
    ex = FakeTrainer(capacity)
    summary = launch(load_experiment(path), Workspace(ws), executor=ex)
    return ex, summary


def trials(ws: Path, experiment: str = "s") -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(journal_path(Workspace(ws), experiment))
    out = []
    for s in optuna.get_all_study_summaries(storage):
        out += optuna.load_study(study_name=s.study_name, storage=storage).get_trials()
    return out


def test_same_sampler_seed_gives_the_same_trial_sequence(write_exp, tmp_path):
    a = write_exp(search_yaml(seed=7), "a.yaml")
    b = write_exp(search_yaml(seed=8), "b.yaml")
    seqs = []
    for i, path in enumerate((a, a, b)):
        ws = tmp_path / f"ws{i}"
        run_search(path, ws, capacity=1)
        seqs.append(
            sorted(
                (t.user_attrs["method"], t.number, json.dumps(t.params, sort_keys=True))
                for t in trials(ws)
            )
        )
    assert seqs[0] == seqs[1]
    assert seqs[0] != seqs[2]  # the seed matters


def test_per_method_budget_gives_equal_trials_and_relaunch_trains_nothing(write_exp, tmp_path):
    path = write_exp(search_yaml(n=3))
    ws = tmp_path / "ws"
    ex, summary = run_search(path, ws)
    ts = trials(ws)
    by_method = {m: [t for t in ts if t.user_attrs["method"] == m] for m in ("lora", "prefix")}
    assert {m: len(v) for m, v in by_method.items()} == {"lora": 3, "prefix": 3}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in ts)
    assert len(ex.submitted) == len(set(ex.submitted)) <= 6
    # relaunch: the study is finished, nothing is asked or trained
    ex2, _ = run_search(path, ws)
    assert ex2.submitted == [] and len(trials(ws)) == 6
    # a larger n_trials extends the finished study by exactly the difference
    path.write_text(search_yaml(n=5), encoding="utf-8")
    run_search(path, ws)
    counts = {m: sum(t.user_attrs["method"] == m for t in trials(ws)) for m in ("lora", "prefix")}
    assert counts == {"lora": 5, "prefix": 5}


def test_shared_budget_is_one_study_with_method_as_a_parameter(write_exp, tmp_path):
    path = write_exp(search_yaml(n=6, budget="shared"))
    ws = tmp_path / "ws"
    run_search(path, ws)
    ts = trials(ws)
    assert len(ts) == 6 and all("method" in t.params for t in ts)
    assert all(
        k == "method" or k.startswith(f"{t.params['method']}:") for t in ts for k in t.params
    )


def test_grid_sampler_runs_every_point_once(write_exp, tmp_path):
    text = (
        search_yaml(sampler="grid")
        .replace("  n_trials: 4\n", "")
        .replace("{float: [1.0e-4, 1.0e-1], log: true}", "{choices: [1.0e-3, 1.0e-2]}")
        .replace("{float: [1.0e-3, 1.0], log: true}", "{choices: [1.0e-2, 1.0e-1, 1.0]}")
    )
    path = write_exp(text)
    ws = tmp_path / "ws"
    ex, _ = run_search(path, ws)
    points = {(t.user_attrs["method"], json.dumps(t.params, sort_keys=True)) for t in trials(ws)}
    assert len(trials(ws)) == len(points) == 4 + 6  # every point of each method's grid, once


def test_trial_that_equals_a_complete_run_reuses_it(write_exp, tmp_path):
    text = (
        search_yaml(sampler="grid")
        .replace("n_trials: 4\n", "n_trials: 4\n")
        .replace("{float: [1.0e-4, 1.0e-1], log: true}", "{choices: [1.0e-2]}")
        .replace("{float: [1.0e-3, 1.0], log: true}", "{choices: [1.0e-2]}")
    )
    path = write_exp(text)
    ws = tmp_path / "ws"
    ex, _ = run_search(path, ws)
    # each method's grid has 2 points; 4 trials per method repeat them: 4 runs in all
    assert len(trials(ws)) == 8
    assert len(ex.submitted) == 4 and len(set(ex.submitted)) == 4


def test_trials_are_in_the_store_and_a_second_process_sees_the_study(write_exp, tmp_path):
    path = write_exp(search_yaml(n=2))
    ws = tmp_path / "ws"
    run_search(path, ws)
    cols, rows = run_query(
        Workspace(ws), "select method, state, count(*) from trials group by all order by all"
    )
    assert rows == [("lora", "complete", 2), ("prefix", "complete", 2)]
    code = textwrap.dedent(f"""
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        st = JournalStorage(JournalFileBackend({str(journal_path(Workspace(ws), "s"))!r}))
        s = optuna.load_study(study_name="s/lora", storage=st)
        print(len(s.trials), s.best_trial.number, s.trials[0].params["r"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lora = [t for t in trials(ws) if t.user_attrs["method"] == "lora"]
    best = max(lora, key=lambda t: t.value)
    assert out.stdout.split() == ["2", str(best.number), str(lora[0].params["r"])]
    # status reads the summary file the launcher writes after each trial
    assert main(["--workspace", str(ws), "status"]) == 0


def test_warm_start_tells_the_study_the_complete_grid_runs(write_exp, tmp_path):
    matrix = "matrix:\n  method:\n    - {name: lora, r: 4, training.lr: [1.0e-3, 1.0e-2]}\n"
    text = (
        experiment_yaml("s", matrix=matrix)
        + SPACE.format(sampler="tpe", seed=0, n=1, budget="per_method")
        + "  warm_start: true\n"
    )
    path = write_exp(text)
    ws = tmp_path / "ws"
    ex, _ = run_search(path, ws)
    ts = trials(ws)
    warm = [t for t in ts if t.user_attrs["source"] == "grid"]
    assert len(warm) == 2 and {t.params["training.lr"] for t in warm} == {1e-3, 1e-2}
    asked = [t for t in ts if t.user_attrs["source"] == "ftsweep"]
    assert {t.user_attrs["method"] for t in asked} == {"lora", "prefix"} and len(asked) == 2
    run_search(path, ws)  # warm start happens once
    assert len([t for t in trials(ws) if t.user_attrs["source"] == "grid"]) == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("{float: [1.0e-4, 1.0e-1], log: true}", "{float: [1.0e-1, 1.0e-4]}"),
            "low must be below high",
        ),
        (
            ("{float: [1.0e-4, 1.0e-1], log: true}", "{float: [0.0, 1.0e-1], log: true}"),
            "log scale needs low > 0",
        ),
        (("sampler: tpe", "sampler: hyperopt"), "sampler"),
        (("objectives: [{metric: exact_match", "objectives: [{metric: exact_matc"), "no evaluator"),
        (("  n_trials: 4\n", ""), "n_trials, timeout or both"),
        (
            (
                "        r: {choices: [4, 8]}\n        training.lr: {float: [1.0e-4, 1.0e-1], log: true}\n",
                "",
            ),
            "nothing to search",
        ),
        (("r: {choices: [4, 8]}", "r: {int: [4, 8], lg: true}"), "did you mean 'log'"),
        (
            ("budget: per_method", "budget: per_method\n  pruner: {type: median}"),
            "training.eval_every",
        ),
        (("budget: per_method", "budget: per_method\n  pruner: {type: asha}"), "pruner"),
        (("budget: per_method", "budget: per_method\n  sampler: cmaes"), None),  # duplicate key
    ],
)
def test_bad_search_input_exits_2_with_file_and_line(write_exp, capsys, change, message):
    old, new = change
    text = search_yaml()
    assert old in text
    path = write_exp(text.replace(old, new, 1))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err.replace("\n", "")
    if message:
        assert message in " ".join(err.split())


def test_several_objectives_need_a_sampler_that_can_and_no_pruner(write_exp, capsys):
    two = (
        "objectives: [{metric: exact_match, direction: maximize}, "
        "{metric: trainable_params, direction: minimize}]"
    )
    text = search_yaml().replace("objectives: [{metric: exact_match, direction: maximize}]", two)
    assert main(["validate", str(write_exp(text.replace("sampler: tpe", "sampler: cmaes")))]) == 2
    assert "optimises one objective" in " ".join(capsys.readouterr().err.split())
    text = text.replace("budget: per_method", "budget: per_method\n  pruner: {type: median}")
    assert main(["validate", str(write_exp(text, "b.yaml"))]) == 2
    assert "pruning needs one objective" in " ".join(capsys.readouterr().err.split())


def test_pareto_study_records_both_objectives(write_exp, tmp_path):
    two = (
        "objectives: [{metric: exact_match, direction: maximize}, "
        "{metric: trainable_params, direction: minimize}]"
    )
    text = search_yaml(sampler="nsga2", n=3).replace(
        "objectives: [{metric: exact_match, direction: maximize}]", two
    )
    ws = tmp_path / "ws"
    run_search(write_exp(text), ws)
    ts = trials(ws)
    assert len(ts) == 6 and all(len(t.values) == 2 and t.values[1] == 100 for t in ts)


def test_plan_shows_space_budget_and_step_bound(write_exp, capsys):
    path = write_exp(search_yaml(n=3))
    assert main(["plan", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["method"]: r for r in out["search"]}
    assert rows["lora"]["trials"] == 3 and rows["lora"]["max_training_steps"] == 3 * 10
    assert "float [0.0001, 0.1] log" in rows["lora"]["space"]["training.lr"]
    assert main(["plan", str(path)]) == 0
    assert "at most 60 training steps" in capsys.readouterr().out


def test_timeout_with_per_method_budget_completes_the_round(write_exp, tmp_path):
    text = search_yaml().replace("  n_trials: 4\n", "  timeout: 0.01\n")
    path = write_exp(text)
    ws = tmp_path / "ws"
    time.sleep(0.02)
    run_search(path, ws)
    counts = [sum(t.user_attrs["method"] == m for t in trials(ws)) for m in ("lora", "prefix")]
    assert counts[0] == counts[1] >= 1


def test_every_shipped_search_file_validates():
    for path in sorted((REPO / "experiments").glob("search*.yaml")):
        exp = load_experiment(path)
        assert exp.search is not None and exp.search.methods, path


def test_seeds_per_trial_gives_each_trial_one_run_per_seed(write_exp, tmp_path):
    text = (
        search_yaml(n=2)
        .replace("seeds: [0]", "seeds: [0, 1, 2]")
        .replace("  budget: per_method", "  budget: per_method\n  seeds_per_trial: 2")
    )
    ws = tmp_path / "ws"
    ex, _ = run_search(write_exp(text), ws)
    ts = trials(ws)
    assert len(ts) == 4 and all(len(t.user_attrs["run_ids"]) == 2 for t in ts)
    assert len(ex.submitted) == 8
    seeds = {RunDir(p).spec()["seed"] for p in (ws / "runs" / "s").iterdir()}
    assert seeds == {0, 1}  # the first seeds_per_trial seeds


def test_store_rebuild_restores_trials_from_the_journal(write_exp, tmp_path):
    from ftsweep.store import rebuild

    ws = tmp_path / "ws"
    run_search(write_exp(search_yaml(n=2)), ws)
    query = "select study, number, state, params, value from trials order by all"
    _, before = run_query(Workspace(ws), query)
    rebuild(Workspace(ws))
    _, after = run_query(Workspace(ws), query)
    assert len(before) == 4 and after == before


def test_an_objective_direction_defaults_to_what_its_evaluator_declares(write_exp):
    text = search_yaml().replace(
        "objectives: [{metric: exact_match, direction: maximize}]",
        "objectives: [{metric: exact_match}, {metric: eval_loss}, {metric: peak_memory_mb}]",
    )
    exp = load_experiment(write_exp(text))
    assert [o.direction for o in exp.spec.search.objectives] == ["maximize", "minimize", "minimize"]


def test_shared_study_gives_the_same_trials_for_the_same_seed(write_exp, tmp_path):
    path = write_exp(search_yaml(n=5, budget="shared", seed=3))
    seqs = []
    for i in range(2):
        run_search(path, tmp_path / f"ws{i}", capacity=1)
        seqs.append([json.dumps(t.params, sort_keys=True) for t in trials(tmp_path / f"ws{i}")])
    assert seqs[0] == seqs[1] and len(set(seqs[0])) == 5


def test_a_study_extended_by_relaunch_asks_what_one_launch_would(write_exp, tmp_path):
    once, twice = tmp_path / "once", tmp_path / "twice"
    run_search(write_exp(search_yaml(n=4), "a.yaml"), once, capacity=1)
    run_search(write_exp(search_yaml(n=2), "b.yaml"), twice, capacity=1)
    run_search(write_exp(search_yaml(n=4), "b.yaml"), twice, capacity=1)

    def seq(ws: Path) -> list[tuple[str, int, str]]:
        return sorted(
            (t.user_attrs["method"], t.number, json.dumps(t.params, sort_keys=True))
            for t in trials(ws)
        )

    assert seq(once) == seq(twice)
