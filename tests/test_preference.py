"""Preference tuning (issue 11): the dpo objective, the preference family, DPO training."""

from __future__ import annotations

import json

import pytest

from ftsweep.config.load import load_experiment
from ftsweep.errors import ConfigError
from ftsweep.rundir import SPEC, RunDir, atomic_write_json
from tests.conftest import DATA, experiment_yaml


def preference_yaml(name: str = "pref", matrix: str = "matrix:\n  method: [full]\n", **kw) -> str:
    text = experiment_yaml(name, matrix=matrix, **kw)
    for split in ("train", "eval", "test"):
        text = text.replace(f"{DATA}/instruction/{split}", f"{DATA}/preference/{split}")
    text = text.replace("family: instruction", "family: preference")
    text = text.replace(
        "evaluators: [loss, exact_match]", "evaluators: [loss, preference_accuracy]"
    )
    text = text.replace("primary_metric: exact_match", "primary_metric: preference_accuracy")
    return text.replace("training:\n", "training:\n  objective: dpo\n  dpo: {beta: 0.5}\n")


def problems_of(path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_experiment(path)
    return [f"{p.file}:{p.line}: {p.key_path}: {p.message}" for p in exc.value.problems]


# --- the objective seam --------------------------------------------------------------


def test_sft_run_ids_do_not_change_and_dpo_params_enter_the_id(write_exp):
    (sft,) = load_experiment(write_exp(experiment_yaml(matrix="matrix:\n  method: [full]\n"))).runs
    explicit = experiment_yaml(matrix="matrix:\n  method: [full]\n").replace(
        "training:\n", "training:\n  objective: sft\n"
    )
    (same,) = load_experiment(write_exp(explicit, "b.yaml")).runs
    assert same.run_id == sft.run_id
    assert "objective" not in json.dumps(sft.config["training"]) or sft.config["training"][
        "objective"
    ] == ("sft")
    matrix = "matrix:\n  method: [full]\n  training.dpo.beta: [0.1, 0.5]\n"
    runs = load_experiment(write_exp(preference_yaml(matrix=matrix), "c.yaml")).runs
    assert len({r.run_id for r in runs}) == 2
    assert sorted(r.config["training"]["dpo"]["beta"] for r in runs) == [0.1, 0.5]
    assert all(r.run_id != sft.run_id for r in runs)


def test_dpo_on_instruction_data_is_refused_with_the_line(write_exp):
    text = experiment_yaml(matrix="matrix:\n  method: [full]\n").replace(
        "training:\n", "training:\n  objective: dpo\n"
    )
    path = write_exp(text)
    found = problems_of(path)
    line = text.splitlines().index("  family: instruction") + 1
    assert any(f"{path}:{line}: data.family" in p and "preference pairs" in p for p in found)


def test_prompt_learning_is_refused_under_dpo_and_base_evaluates_the_start(write_exp):
    matrix = "matrix:\n  method:\n    - base\n    - {name: prompt, num_virtual_tokens: [4]}\n"
    found = problems_of(write_exp(preference_yaml(matrix=matrix)))
    assert not any("method base" in p for p in found)  # the starting point, evaluated
    assert any("method prompt cannot train" in p and "virtual tokens" in p for p in found)


def test_dpo_params_without_the_dpo_objective_are_refused(write_exp):
    text = experiment_yaml(matrix="matrix:\n  method: [full]\n").replace(
        "training:\n", "training:\n  dpo: {beta: 0.3}\n"
    )
    assert any(
        "training.dpo is set but training.objective is 'sft'" in p
        for p in problems_of(write_exp(text))
    )


def test_sft_on_preference_data_is_refused(write_exp):
    text = preference_yaml().replace("  objective: dpo\n  dpo: {beta: 0.5}\n", "")
    assert any("sft would ignore the rejected answers" in p for p in problems_of(write_exp(text)))


# --- the preference family -----------------------------------------------------------


def _bad_pairs(tmp_path):
    good = json.loads((DATA / "preference" / "train.jsonl").read_text().splitlines()[0])
    rows = [
        good,
        {k: v for k, v in good.items() if k != "chosen"},
        {**good, "rejected": good["chosen"]},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_bad_preference_records_get_file_and_line(write_exp, tmp_path):
    bad = _bad_pairs(tmp_path)
    text = preference_yaml().replace(f"{DATA}/preference/train.jsonl", str(bad))
    found = problems_of(write_exp(text))
    assert any(f"{bad}:2: missing chosen (preference records need prompt" in p for p in found)
    assert any(f"{bad}:3: chosen and rejected are the same answer" in p for p in found)
    assert not any(f"{bad}:1:" in p for p in found)


def test_shipped_pairs_are_valid_bilingual_and_prefer_the_answer():
    instruction = {
        json.loads(line)["id"].replace("instruction", "preference"): json.loads(line)
        for line in (DATA / "instruction" / "test.jsonl").read_text().splitlines()
    }
    pairs = [json.loads(x) for x in (DATA / "preference" / "test.jsonl").read_text().splitlines()]
    assert len(pairs) == 200 and {p["lang"] for p in pairs} == {"en", "zh"}
    for pair in pairs:
        source = instruction[pair["id"]]
        assert pair["chosen"] == source["output"] and pair["rejected"] != pair["chosen"]
        assert pair["prompt"] == source["instruction"] and pair["task"] == source["task"]


def test_make_data_writes_the_same_pairs(tmp_path):
    import sys

    sys.path.insert(0, str(DATA.parent / "scripts"))
    import make_data

    paths = make_data.write_preference(tmp_path, seed=0)
    for path in paths:
        shipped = DATA / "preference" / path.name
        assert path.read_bytes() == shipped.read_bytes(), f"{shipped} is stale: rerun make_data"


# --- the evaluator -------------------------------------------------------------------


def test_preference_accuracy_from_margins():
    from ftsweep.evaluators import get_evaluator

    cls = get_evaluator("preference_accuracy")
    scores = cls.from_margins({"a": 1.5, "b": -0.5, "c": 0.0, "d": 2.0})
    assert scores.aggregate == {"preference_accuracy": 0.5, "preference_margin": 0.75}
    assert [v for _, m, v in scores.per_example if m == "preference_accuracy"] == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="no preference margins"):
        cls.from_margins({})


def test_preference_accuracy_on_instruction_data_is_refused(write_exp):
    text = experiment_yaml(matrix="matrix:\n  method: [full]\n").replace(
        "evaluators: [loss, exact_match]", "evaluators: [loss, exact_match, preference_accuracy]"
    )
    found = problems_of(write_exp(text))
    assert any("preference_accuracy compares chosen and rejected" in p for p in found)


# --- training ------------------------------------------------------------------------

METHODS = {"full": "method: [full]", "lora": "method:\n    - {name: lora, r: [8]}"}


@pytest.fixture(scope="module", params=sorted(METHODS))
def dpo_run(request, tmp_path_factory):
    """ONE tiny DPO run per method, trained in process; the tests below read it."""
    tmp = tmp_path_factory.mktemp(f"dpo-{request.param}")
    text = preference_yaml(
        f"dpo-{request.param}", matrix=f"matrix:\n  {METHODS[request.param]}\n", max_steps=12
    )
    text = text.replace("lr: 1.0e-3", "lr: 5.0e-3" if request.param == "lora" else "lr: 1.0e-3")
    exp = tmp / "exp.yaml"
    exp.write_text(text, encoding="utf-8")
    (spec,) = load_experiment(exp).runs
    from ftsweep.worker.__main__ import run

    mp = pytest.MonkeyPatch()
    mp.setenv("FTSWEEP_THREADS", "1")
    rd = RunDir(tmp / spec.run_id)
    rd.path.mkdir()
    atomic_write_json(rd.file(SPEC), spec.to_json())
    try:
        result = run(rd.path)
    finally:
        mp.undo()
    return request.param, rd, result


@pytest.mark.slow
def test_dpo_trains_with_a_falling_loss(dpo_run):
    method, rd, result = dpo_run
    assert result["status"] == "complete" and result["steps"] == 12
    losses = [m["value"] for m in rd.metrics() if m["name"] == "loss"]
    assert len(losses) == 6
    assert losses[-1] < losses[0], f"{method}: DPO loss did not fall: {losses}"
    names = {m["name"] for m in rd.metrics()}
    assert any("rewards" in n or "margins" in n for n in names), names
    assert rd.file("result.json").is_file() and rd.file("heartbeat.json").exists()
    saved = json.loads((rd.file("artifacts") / "training_config.json").read_text())
    assert saved["training"]["objective"] == "dpo" and saved["training"]["dpo"]["beta"] == 0.5
    final = result["final_eval"]
    assert 0.0 <= final["preference_accuracy"] <= 1.0 and final["eval_loss"] > 0
    rows = [json.loads(x) for x in rd.file("evals.jsonl").read_text().splitlines()]
    accuracy = [r["value"] for r in rows if r["metric"] == "preference_accuracy"]
    margins = [r["value"] for r in rows if r["metric"] == "preference_margin"]
    assert len(accuracy) == len(margins) == 16
    assert final["preference_accuracy"] == pytest.approx(sum(accuracy) / 16)
    assert accuracy == [1.0 if m > 0 else 0.0 for m in margins]
    if method == "lora":  # TRL's frozen reference adapter is not part of the artefact
        assert not (rd.file("artifacts") / "ref").exists()
        assert (rd.file("artifacts") / "adapter_model.safetensors").is_file()


def test_pair_field_names_at_their_defaults_leave_run_ids_alone():
    from ftsweep.fingerprint import PAIR_FIELDS, path_free

    old = {"instruction": "q", "output": "a"}  # a field map from before the pair families
    new = {**old, **{k: k for k in PAIR_FIELDS}}
    cfg = {"data": {"fields": new, "train": [{"path": "x", "fields": new}]}}
    hashed = path_free(cfg)
    assert hashed["data"]["fields"] == old
    assert hashed["data"]["train"][0]["fields"] == old
    renamed = path_free({"data": {"fields": {**new, "chosen": "good"}}})
    assert renamed["data"]["fields"] == {**old, "chosen": "good"}  # a set name still counts
