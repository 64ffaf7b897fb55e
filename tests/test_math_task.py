"""The GSM8K-style task: generated data, its experiment, and its scores by hand."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from ftsweep.config.load import load_experiment
from ftsweep.evaluators import build_evaluator
from ftsweep.worker.dataset import Example
from ftsweep.worker.evaluate import _items

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def make_data():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("make_data", ROOT / "scripts" / "make_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_math_data_is_reproducible_and_consistent(make_data, tmp_path):
    paths = make_data.write_math(tmp_path, seed=0)
    assert [p.name for p in paths] == ["test.jsonl", "eval.jsonl", "train.jsonl"]
    for path in paths:
        committed = ROOT / "data" / "math" / path.name
        assert path.read_bytes() == committed.read_bytes(), f"data/math/{path.name} is stale"
    splits = {p.stem: [json.loads(x) for x in p.read_text().splitlines()] for p in paths}
    assert {k: len(v) for k, v in splits.items()} == {"test": 50, "eval": 50, "train": 1000}
    train_questions = {r["instruction"] for r in splits["train"]}
    for rec in splits["test"] + splits["eval"] + splits["train"]:
        # every step of the worked solution is true arithmetic, the last line its answer
        *steps, answer = rec["output"].split("\n")
        for step in steps:
            lhs, rhs = step.split(" = ")
            a, op, b = lhs.split(" ")
            assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(rhs)
        assert re.fullmatch(r"#### \d+", answer) and answer.endswith(steps[-1].split(" = ")[1])
    assert not train_questions & {r["instruction"] for r in splits["test"]}  # held out
    assert make_data.generate_math(1)["test"] != splits["test"]


def test_math_experiment_uses_extraction_and_sampling():
    exp = load_experiment(ROOT / "experiments" / "math.yaml", deep=False)
    run = exp.runs[0]
    ecfg = run.config["eval"]
    assert ecfg["answer_extraction"] == "gsm8k"
    assert ecfg["generation"]["do_sample"] and ecfg["generation"]["num_samples"] >= 2
    assert {"pass_at_k", "majority_vote"} <= set(ecfg["evaluators"])


def test_math_scores_by_hand_on_shipped_problems():
    """Four samples for three real test problems, scored by hand:

    problem 0 (answer 16): samples give 17, 17, 16, 17      -> c=1; vote 17 (wrong)
    problem 1 (answer 5):  samples give 5, 4, 5, no answer  -> c=2; vote 5 (right)
    problem 2:             samples all wrong (answer + 1)   -> c=0; vote wrong
    pass@1 = mean(c/4) = (1/4 + 2/4 + 0) / 3 = 1/4
    pass@2 = mean(1 - C(4-c,2)/C(4,2)) = (1 - 3/6 + 1 - 1/6 + 0) / 3 = (1/2 + 5/6) / 3 = 4/9
    pass@4 = (1 + 1 + 0) / 3 = 2/3;  majority vote = 1/3;  exact match (first sample) = 1/3
    """
    lines = (ROOT / "data" / "math" / "test.jsonl").read_text().splitlines()[:3]
    records = [json.loads(x) for x in lines]
    answers = [int(r["output"].rsplit("#### ", 1)[1]) for r in records]
    examples = [Example(r["id"], [1], [1], "p", r["output"], r) for r in records]
    samples = [
        [f"... #### {answers[0] + 1}"] * 2 + [f"#### {answers[0]}", f"#### {answers[0] + 1}"],
        [
            f"so #### {answers[1]}",
            f"#### {answers[1] - 1}",
            f"#### {answers[1]:,}.0",  # normalised to the same number
            "I do not know",  # no answer line: extracts nothing, does not vote
        ],
        [f"#### {answers[2] + 1}"] * 4,
    ]
    # problem 1's first sample is right, so exact match (first samples) is 1/3
    items, records_out = _items(examples, samples, {"answer_extraction": "gsm8k"})
    assert [i.reference for i in items] == [str(a) for a in answers]
    assert records_out[1]["answers"][3] == ""  # raw text kept, no answer extracted
    assert records_out[1]["samples"][3] == "I do not know"
    pass_k = build_evaluator("pass_at_k").score(items).aggregate
    assert pass_k["pass@1"] == pytest.approx(1 / 4)
    assert pass_k["pass@2"] == pytest.approx(4 / 9)
    assert pass_k["pass@4"] == pytest.approx(2 / 3)
    assert build_evaluator("majority_vote").score(items).aggregate == {
        "majority_vote": pytest.approx(1 / 3)
    }
    assert build_evaluator("exact_match").score(items).aggregate == {
        "exact_match": pytest.approx(1 / 3)
    }
