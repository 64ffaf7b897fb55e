"""Stages (issue 11): model.from_run starts a run from another run's trained weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftsweep.config.load import load_experiment
from ftsweep.config.stages import bind
from ftsweep.errors import ConfigError, FtsweepError
from ftsweep.launch.executor import Executor, Job
from ftsweep.launch.launcher import launch
from ftsweep.plan import chain, plan
from ftsweep.rundir import METRICS, RESULT, SPEC, RunDir, atomic_write_json
from ftsweep.workspace import Workspace
from tests.conftest import MODEL, experiment_yaml

PARENT_MATRIX = (
    "matrix:\n  method:\n    - {name: lora, r: [4], training.lr: [1.0e-2]}\n"
    "    - {name: full, training.lr: [1.0e-3, 2.0e-3]}\n"
)


def child_yaml(select: str = "best", parent: str = "sft", name: str = "dpo", **kw) -> str:
    text = experiment_yaml(name, matrix="matrix:\n  method: [full]\n", **kw)
    text = text.replace(f"  path: {MODEL}\n", "")  # left out: the parent's base model
    return text.replace(
        "model:\n", f"model:\n  from_run: {{experiment: {parent}, select: {select}}}\n"
    )


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_experiment(path)
    return [f"{p.file}:{p.line}: {p.key_path}: {p.message}" for p in exc.value.problems]


def shallow(path: Path):
    """The loader without deep checks (model, data records): these tests need the chain."""
    return load_experiment(path, deep=False)


def line_of(text: str, needle: str) -> int:
    return next(i for i, x in enumerate(text.splitlines(), 1) if needle in x)


# --- schema, ids and refusals (no training) ---------------------------------------------


def test_a_file_without_from_run_keeps_its_run_ids(write_exp):
    """from_run: None is left out of the hash, so ids are those of a config without it."""
    from ftsweep.config.load import RunSpec

    exp = load_experiment(write_exp(experiment_yaml("sft", matrix=PARENT_MATRIX)))
    for run in exp.runs:
        assert run.config["model"]["from_run"] is None
        old_model = {k: v for k, v in run.config["model"].items() if k != "from_run"}
        old = RunSpec(
            run.experiment,
            run.method,
            run.seed,
            run.params,
            {**run.config, "model": old_model},
            run.paths,
            run.fingerprints,
        )
        assert old.run_id == run.run_id


def test_select_by_run_id_binds_at_load_and_enters_the_id(write_exp, tmp_path):
    parent = shallow(write_exp(experiment_yaml("sft", matrix=PARENT_MATRIX), "sft.yaml"))
    lora = next(r for r in parent.runs if r.method == "lora")
    exp = shallow(write_exp(child_yaml(select=lora.run_id), "child.yaml"))
    (run,) = exp.runs
    assert run.config["model"]["from_run"] == {
        "experiment": "sft",
        "select": lora.run_id,
        "run_id": lora.run_id,
    }
    assert run.config["model"]["path"] == str(MODEL.resolve())  # inherited
    other = next(r for r in parent.runs if r.method == "full")
    (run2,) = shallow(write_exp(child_yaml(select=other.run_id), "child2.yaml")).runs
    assert run2.run_id != run.run_id
    bind(exp, Workspace(tmp_path / "ws"))
    assert exp.paths["parent_run"] == str((tmp_path / "ws/runs/sft" / lora.run_id).resolve())


def test_refusals_name_file_and_line(write_exp, tmp_path):
    write_exp(experiment_yaml("sft", matrix=PARENT_MATRIX), "sft.yaml")
    text = child_yaml(parent="nosuch")
    path = write_exp(text, "a.yaml")
    found = problems_of(path)
    assert not any("model.path" in p for p in found), found  # it would come from the parent
    (msg,) = [p for p in found if "no parent experiment file" in p]
    assert msg.startswith(f"{path}:{line_of(text, 'from_run')}: model.from_run.experiment")
    assert str(tmp_path / "nosuch.yaml") in msg

    text = child_yaml(select="0123456789ab")
    path = write_exp(text, "b.yaml")
    (msg,) = [p for p in problems_of(path) if "no run '0123456789ab'" in p]
    assert msg.startswith(f"{path}:{line_of(text, 'from_run')}: model.from_run.select")

    # the parent's own problems, at the parent's file and line
    bad = experiment_yaml("bad", matrix=PARENT_MATRIX).replace("  lr: 1.0e-3", "  lrr: 1.0e-3")
    write_exp(bad, "bad.yaml")
    found = problems_of(write_exp(child_yaml(parent="bad"), "g.yaml"))
    line = line_of(bad, "lrr:")
    assert any(p.startswith(f"{tmp_path / 'bad.yaml'}:{line}: training.lrr") for p in found)
    assert any("the parent experiment" in p and "1 problem(s)" in p for p in found), found

    # a cycle: c from d from c (and the parent's own problems are listed too)
    write_exp(child_yaml(parent="d", name="c"), "c.yaml")
    write_exp(child_yaml(parent="c.yaml", name="d"), "d.yaml")
    found = problems_of(tmp_path / "c.yaml")
    assert any("stages form a cycle: c.yaml → d.yaml → c.yaml" in p for p in found), found
    assert any(p.startswith(f"{tmp_path / 'c.yaml'}:") for p in found)

    # a parent that cannot become plain weights, chosen by id; a qlora child; a matrix
    # varying the parent; another base model
    prompt = experiment_yaml("pp", matrix="matrix:\n  method:\n    - {name: prompt}\n")
    (run,) = load_experiment(write_exp(prompt, "pp.yaml")).runs
    text = child_yaml(parent="pp", select=run.run_id).replace(
        "method: [full]", "method: [qlora]\n  model.from_run.select: [best]"
    )
    found = problems_of(write_exp(text, "e.yaml"))
    assert any("cannot be a parent" in p and "virtual tokens" in p for p in found), found
    assert any("method qlora cannot start a stage" in p for p in found), found
    assert any("matrix.model.from_run.select: unknown key" in p for p in found), found
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "config.json").write_text("{}")
    text = child_yaml().replace("model:\n", f"model:\n  path: {other}\n")
    found = problems_of(write_exp(text, "f.yaml"))
    assert any(f":{line_of(text, 'path:')}: model.path: is not the parent" in p for p in found)


# --- select: best, against a workspace (run directories written by hand) --------------


def fake_complete(ws: Workspace, run, final: dict, eval_loss: float | None, split="test"):
    rd = ws.run_dir(run.experiment, run.run_id)
    rd.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(rd.file(SPEC), run.to_json())
    if eval_loss is not None:
        rd.file(METRICS).write_text(
            json.dumps({"step": 2, "name": "eval_loss", "value": eval_loss + 1})
            + "\n"
            + json.dumps({"step": 4, "name": "eval_loss", "value": eval_loss})
            + "\n"
        )
    atomic_write_json(rd.file(RESULT), {"eval_split": split, "final_eval": final})


def test_best_is_chosen_on_validation_not_on_test(write_exp, tmp_path, capsys):
    ws = Workspace(tmp_path / "ws")
    parent_path = write_exp(experiment_yaml("sft", matrix=PARENT_MATRIX), "sft.yaml")
    parent = shallow(parent_path)
    child = shallow(write_exp(child_yaml(), "child.yaml"))
    assert child.runs == [] and len(child.pending) == 1  # nothing trained yet
    assert plan(child, ws) == [] and chain(child, ws)[0]["selected"] is None
    from ftsweep.cli import main

    assert main(["plan", str(tmp_path / "child.yaml"), "--workspace", str(ws.root)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "stage: dpo ← parent sft" in shown and "3 runs (3 new; 3 to train)" in shown
    assert "select best: selected after the parent trains" in shown
    assert main(["plan", str(tmp_path / "child.yaml"), "--workspace", str(ws.root), "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["runs"] == [] and planned["pending"] == 1
    assert planned["stages"][0]["parent"] == "sft" and planned["stages"][0]["to_train"] == 3
    a, b, c = parent.runs
    # a: best on test (exact_match) but worst on validation; b: best on validation
    fake_complete(ws, a, {"exact_match": 0.9}, eval_loss=3.0)
    fake_complete(ws, b, {"exact_match": 0.1}, eval_loss=1.0)
    assert plan(child, ws) == []  # c is still to train: not selected yet
    fake_complete(ws, c, {"exact_match": 0.5}, eval_loss=2.0)
    (item,) = plan(child, ws)
    assert item.run.config["model"]["from_run"]["run_id"] == b.run_id
    assert "eval_loss" in child.stage.how and child.stage.warnings == []
    first_id = item.run.run_id

    # selecting the same parent by its id gives the same child run
    (same,) = shallow(write_exp(child_yaml(select=b.run_id), "child-id.yaml")).runs
    assert same.run_id == first_id

    # without validation scores: chosen on test, with a warning
    ws2 = Workspace(tmp_path / "ws2")
    for run, score in zip(parent.runs, (0.9, 0.1, 0.5), strict=True):
        fake_complete(ws2, run, {"exact_match": score}, eval_loss=None)
    child2 = shallow(tmp_path / "child.yaml")
    bind(child2, ws2)
    assert child2.stage.run_id == a.run_id and "test split" in child2.stage.warnings[0]
    assert main(["plan", str(tmp_path / "child.yaml"), "--workspace", str(ws2.root)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"starts from run {a.run_id}" in shown and "selected on the test split" in shown
    assert "1 runs" in shown or "(1 runs)" in shown


def test_the_chain_rebuilds_when_the_parent_changes(write_exp, tmp_path):
    ws = Workspace(tmp_path / "ws")
    write_exp(experiment_yaml("sft", matrix=PARENT_MATRIX), "sft.yaml")
    parent = shallow(tmp_path / "sft.yaml")
    for i, run in enumerate(parent.runs):
        fake_complete(ws, run, {"exact_match": 0.1 * i}, eval_loss=1.0 + i)
    (before,) = plan(shallow(write_exp(child_yaml(), "child.yaml")), ws)
    # the parent's config changes (its steps): new parent ids, so new child ids
    write_exp(experiment_yaml("sft", matrix=PARENT_MATRIX, max_steps=12), "sft.yaml")
    changed = shallow(tmp_path / "sft.yaml")
    assert not {r.run_id for r in changed.runs} & {r.run_id for r in parent.runs}
    child = shallow(tmp_path / "child.yaml")
    assert plan(child, ws) == []  # the changed parent must train first
    for i, run in enumerate(changed.runs):
        fake_complete(ws, run, {"exact_match": 0.1 * i}, eval_loss=1.0 + i)
    (after,) = plan(child, ws)
    assert after.run.run_id != before.run.run_id and after.action == "train"
    assert after.run.config["model"]["from_run"]["run_id"] == changed.runs[0].run_id


def test_no_completed_parent_run_is_an_error_with_the_line(write_exp, tmp_path):
    ws = Workspace(tmp_path / "ws")
    parent = shallow(write_exp(experiment_yaml("sft", matrix=PARENT_MATRIX), "sft.yaml"))
    for run in parent.runs:
        rd = ws.run_dir("sft", run.run_id)
        rd.path.mkdir(parents=True)
        atomic_write_json(rd.file(SPEC), run.to_json())
        rd.write_failure("boom")
    text = child_yaml()
    path = write_exp(text, "child.yaml")
    with pytest.raises(ConfigError) as exc:
        plan(shallow(path), ws)
    (p,) = exc.value.problems
    assert (p.file, p.line) == (str(path), line_of(text, "from_run"))
    assert "no completed run" in p.message and "failed" in p.message


class ScoringExecutor(Executor):
    """Completes each job at once with a score from its learning rate (no training)."""

    name = "scoring"
    max_machines = 1
    capacity = 1

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.order: list[str] = []

    def submit(self, job: Job) -> None:
        self.jobs.append(job)
        rd = RunDir(job.log_path.parent)
        self.order.append(rd.spec()["experiment"])

    def poll(self) -> list[tuple[Job, int]]:
        done = []
        for job in self.jobs:
            rd = RunDir(job.log_path.parent)
            lr = rd.spec()["config"]["training"]["lr"]
            atomic_write_json(
                rd.file(RESULT), {"eval_split": "eval", "final_eval": {"exact_match": lr}}
            )
            done.append((job, 0))
        self.jobs = []
        return done

    def running(self) -> int:
        return len(self.jobs)

    def cancel_all(self) -> None:
        self.jobs = []

    def reattach(self, job: Job) -> bool:
        return False

    def cancel(self, job_ids: list[str]) -> None:
        pass


def test_launch_trains_the_missing_parent_first(write_exp, tmp_path):
    ws = Workspace(tmp_path / "ws")
    sft = experiment_yaml("sft", matrix=PARENT_MATRIX).replace("split: test", "split: eval")
    write_exp(sft, "sft.yaml")
    child = shallow(write_exp(child_yaml(), "child.yaml"))
    ex = ScoringExecutor()
    summary = launch(child, ws, executor=ex)
    assert ex.order == ["sft", "sft", "sft", "dpo"]
    assert summary.exit_code == 0 and len(summary.complete) == 1
    assert [name for name, _ in summary.parents] == ["sft"]
    (run,) = child.runs
    best = max(child.stage.parent.runs, key=lambda r: r.config["training"]["lr"])
    assert run.config["model"]["from_run"]["run_id"] == best.run_id
    spec = ws.run_dir("dpo", run.run_id).spec()
    assert spec["paths"]["parent_run"] == str(ws.run_dir("sft", best.run_id).path.resolve())
    again = launch(shallow(tmp_path / "child.yaml"), ws, executor=ex)
    assert again.skipped == 1 and ex.order == ["sft", "sft", "sft", "dpo"]  # nothing new
    with pytest.raises(FtsweepError, match="--detach cannot chain"):
        fresh = tmp_path / "ws-fresh"
        launch(shallow(tmp_path / "child.yaml"), Workspace(fresh), executor=ex, detach=True)


# --- weights: one tiny trained parent per method, in process --------------------------


@pytest.fixture(scope="module")
def trained_parents(tmp_path_factory):
    """ONE tiny lora and ONE tiny full parent run (4 steps), trained in process."""
    from ftsweep.worker.__main__ import run as run_worker

    tmp = tmp_path_factory.mktemp("stages")
    ws = Workspace(tmp / "ws")
    matrix = (
        "matrix:\n  method:\n    - {name: lora, r: [4], training.lr: [5.0e-2]}\n"
        "    - {name: full, training.lr: [1.0e-2]}\n"
    )
    text = experiment_yaml("sft", matrix=matrix, max_steps=4).replace(
        "max_examples: 16", "max_examples: 4"
    )
    (tmp / "sft.yaml").write_text(text, encoding="utf-8")
    parent = load_experiment(tmp / "sft.yaml")
    mp = pytest.MonkeyPatch()
    mp.setenv("FTSWEEP_THREADS", "1")
    try:
        for spec in parent.runs:
            rd = ws.run_dir("sft", spec.run_id)
            rd.path.mkdir(parents=True)
            atomic_write_json(rd.file(SPEC), spec.to_json())
            assert run_worker(rd.path)["status"] == "complete"
    finally:
        mp.undo()
    return tmp, ws, {r.method: r for r in parent.runs}


def _logits(model, tok):
    import torch

    ids = tok("Translate to French: cat", return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**ids).logits


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_child_starts_from_its_parents_trained_weights(trained_parents, method):
    import torch
    from transformers import AutoModelForCausalLM

    from ftsweep.export import load_trained
    from ftsweep.worker import setup

    tmp, ws, parents = trained_parents
    parent = parents[method]
    (tmp / f"child-{method}.yaml").write_text(child_yaml(select=parent.run_id), encoding="utf-8")
    child = load_experiment(tmp / f"child-{method}.yaml")
    bind(child, ws)
    (run,) = child.runs
    model, tok = setup.load_model_and_tokenizer(
        run.config, run.paths["model"], None, parent=run.paths["parent_run"]
    )
    # the parent's artefacts as saved (an unmerged peft adapter for lora), reloaded apart
    reference, _ = load_trained(ws.run_dir("sft", parent.run_id).path)
    assert type(model).__name__ == "LlamaForCausalLM"  # plain weights, adapter merged
    assert all(p.requires_grad for p in model.parameters()) and model.training
    got, want = _logits(model, tok), _logits(reference, tok)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    base = AutoModelForCausalLM.from_pretrained(MODEL, use_safetensors=True)
    assert not torch.allclose(got, _logits(base, tok), atol=1e-3)  # training moved it
    # the tokenizer is the parent's own copy, saved with its artefacts
    assert tok.name_or_path == str(ws.run_dir("sft", parent.run_id).file("artifacts"))


@pytest.mark.slow
def test_a_child_trains_and_reloads_on_its_parent(trained_parents):
    """A lora child of the lora parent: trains, records its parent, and rebuilds (export)
    on the parent's merged weights with the logits it was evaluated with."""
    import torch

    from ftsweep.export import load_trained
    from ftsweep.worker.__main__ import run as run_worker

    tmp, ws, parents = trained_parents
    text = child_yaml(select=parents["lora"].run_id, max_steps=2).replace(
        "method: [full]", "method:\n    - {name: lora, r: [4], training.lr: [5.0e-2]}"
    )
    (tmp / "child-train.yaml").write_text(text.replace("max_examples: 16", "max_examples: 4"))
    child = load_experiment(tmp / "child-train.yaml")
    bind(child, ws)
    (spec,) = child.runs
    rd = ws.run_dir("dpo", spec.run_id)
    rd.path.mkdir(parents=True)
    atomic_write_json(rd.file(SPEC), spec.to_json())
    mp = pytest.MonkeyPatch()
    mp.setenv("FTSWEEP_THREADS", "1")
    try:
        result = run_worker(rd.path)
    finally:
        mp.undo()
    assert result["status"] == "complete" and result["steps"] == 2
    prov = json.loads(rd.file("provenance.json").read_text())
    assert prov["parent_run"]["run_id"] == parents["lora"].run_id
    model, tok = load_trained(rd.path)
    again, _ = load_trained(rd.path)
    parent_model, _ = load_trained(ws.run_dir("sft", parents["lora"].run_id).path)
    assert torch.equal(_logits(model, tok), _logits(again, tok))  # round trip
    assert not torch.allclose(_logits(model, tok), _logits(parent_model, tok), atol=1e-4)


def test_a_chain_of_three_binds_from_the_root(write_exp, tmp_path):
    ws = Workspace(tmp_path / "ws")
    write_exp(experiment_yaml("sft", matrix=PARENT_MATRIX), "sft.yaml")
    write_exp(child_yaml(name="dpo"), "dpo.yaml")
    write_exp(child_yaml(parent="dpo", name="third"), "third.yaml")
    third = shallow(tmp_path / "third.yaml")
    for i, run in enumerate(third.stage.parent.stage.parent.runs):
        fake_complete(ws, run, {"exact_match": 0.0}, eval_loss=3.0 - i)
    assert plan(third, ws) == []  # the middle stage is bound but has not trained
    stages = chain(third, ws)
    assert [(s["child"], s["parent"]) for s in stages] == [("dpo", "sft"), ("third", "dpo")]
    assert stages[0]["selected"] and stages[1]["selected"] is None
    (middle,) = third.stage.parent.runs
    assert middle.config["model"]["from_run"]["run_id"] == stages[0]["selected"]
    fake_complete(ws, middle, {"exact_match": 0.5}, eval_loss=1.0)
    (item,) = plan(third, ws)
    assert item.run.config["model"]["from_run"]["run_id"] == middle.run_id


def test_the_json_schema_lets_a_stage_leave_model_path_out():
    import jsonschema

    from ftsweep.config.jsonschema import experiment_schema

    v = jsonschema.Draft202012Validator(experiment_schema())
    base = {"experiment": "x", "data": {"train": "a.jsonl"}, "matrix": {"method": ["full"]}}
    assert not list(v.iter_errors({**base, "model": {"from_run": {"experiment": "sft"}}}))
    assert list(v.iter_errors({**base, "model": {}}))  # neither path nor from_run
