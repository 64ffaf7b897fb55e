"""The translated public configs (experiments/external/) validate, and one trains.

The translations keep the originals' settings but for model and data paths (and what a
CPU or the tiny model cannot take, marked CHANGED in each file); README's table lists
them setting by setting. One run (the LLaMA-Factory one: a mixture with the model's chat
template and bf16 weights) trains in process at a two-step budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftsweep.config.load import load_experiment
from ftsweep.rundir import SPEC, RunDir, atomic_write_json
from tests.conftest import REPO

EXTERNAL = sorted((REPO / "experiments" / "external").glob("*.yaml"))


def test_there_are_three_translations():
    assert [p.stem for p in EXTERNAL] == [
        "axolotl_lora_1b",
        "llamafactory_llama3_lora_sft",
        "peft_metamathqa_lora_rank32",
    ]


@pytest.mark.parametrize("path", EXTERNAL, ids=lambda p: p.stem)
def test_translation_validates(path: Path):
    exp = load_experiment(path)
    assert len(exp.runs) == 1 and exp.runs[0].method == "lora"
    assert not exp.notes, [n.format() for n in exp.notes]
    for key, file in exp.runs[0].paths.items():
        assert Path(file).exists(), key


def test_generated_layouts_are_the_originals_and_deterministic():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_data", REPO / "scripts" / "make_data.py")
    assert spec and spec.loader
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    layouts = make_data.external_layouts(0)
    assert layouts == make_data.external_layouts(0)
    assert set(layouts["metamathqa/train.jsonl"][0]) == {
        "query",
        "response",
        "type",
        "original_question",
    }
    assert set(layouts["metamathqa/test.jsonl"][0]) == {"query", "response"}
    assert set(layouts["alpaca/alpaca_en_demo.json"][0]) == {"instruction", "input", "output"}
    # the committed files are what the generator writes
    demo = REPO / "data" / "external" / "alpaca" / "alpaca_en_demo.json"
    assert json.loads(demo.read_text(encoding="utf-8")) == layouts["alpaca/alpaca_en_demo.json"]
    lines = (REPO / "data" / "external" / "metamathqa" / "train.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == layouts["metamathqa/train.jsonl"]


@pytest.mark.slow
def test_llamafactory_translation_trains_a_mixture_with_the_chat_template(tmp_path, monkeypatch):
    from ftsweep.worker.__main__ import run

    (spec,) = load_experiment(
        REPO / "experiments" / "external" / "llamafactory_llama3_lora_sft.yaml"
    ).runs
    spec.config = {
        **spec.config,
        "training": {**spec.config["training"], "max_steps": 2, "grad_accum": 2},
        "eval": {**spec.config["eval"], "max_examples": 4},
    }
    monkeypatch.setenv("FTSWEEP_THREADS", "1")
    rd = RunDir(tmp_path / "runs" / "x" / spec.run_id)
    rd.path.mkdir(parents=True)
    atomic_write_json(rd.file(SPEC), spec.to_json())
    result = run(rd.path)
    assert result["status"] == "complete" and result["steps"] == 2
    train = result["data_counts"]["train"]
    assert train["source:identity"] == 8 and train["source:alpaca_en_demo"] > 400
    assert train["kept"] == train["source:identity"] + train["source:alpaca_en_demo"]
    assert result["final_eval"]["eval_loss"] > 0
    # the training examples were rendered by the model's chat template (the token cache
    # keeps each encoded split: [id, ids, labels, prompt, reference, record])
    prompts = [
        ex[3]
        for p in (tmp_path / "cache" / "tokens").glob("*.json")
        for ex in json.loads(p.read_text(encoding="utf-8"))["examples"]
    ]
    assert prompts and all(
        p.startswith("<|user|>") and p.endswith("<|assistant|>\n") for p in prompts
    )
    # the store keeps the counts (runs.data_counts, migration 0007)
    from ftsweep.cli import main as cli_main
    from ftsweep.store.query import run_query
    from ftsweep.workspace import Workspace

    assert cli_main(["--workspace", str(tmp_path), "ingest"]) == 0
    _, rows = run_query(
        Workspace(tmp_path),
        "select data_counts->'train'->>'source:identity' from runs",
    )
    assert rows == [("8",)]
    saved = json.loads((rd.file("artifacts") / "training_config.json").read_text())
    assert saved["model"]["dtype"] == "bf16" and saved["data"]["template"] == "chat"
