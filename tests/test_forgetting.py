"""The forgetting evaluator: the general-text probe, its losses before and after
fine-tuning, the config checks around it, and the report section's view-model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftsweep.config.load import load_experiment
from ftsweep.errors import ConfigError
from ftsweep.evaluators import build_evaluator, get_evaluator
from ftsweep.evaluators.forgetting import Forgetting
from ftsweep.report.forgetting import forgetting_rows
from ftsweep.report.stats import summarize
from ftsweep.worker.probe import ProbeError, ProbeSet, read_probe
from tests.conftest import DATA, MODEL, REPO, experiment_yaml

PROBE = DATA / "probe" / "general.jsonl"


def _cfg(**params: object) -> dict:
    return {
        "eval": {
            "evaluators": ["loss", "forgetting"],
            "evaluator_params": {"forgetting": {"probe": str(PROBE), **params}},
            "batch_size": 16,
        }
    }


# --- the probe file ------------------------------------------------------------------


def test_probe_is_generated_deterministically_and_matches_the_committed_file(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("make_data", REPO / "scripts" / "make_data.py")
    assert spec and spec.loader
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    written = make_data.write_probe(tmp_path, seed=0)
    assert written.read_bytes() == PROBE.read_bytes(), "data/probe is stale: run `make data`"
    records = [json.loads(line) for line in PROBE.read_text(encoding="utf-8").splitlines()]
    assert len(records) == make_data.PROBE_SIZE
    assert {r["lang"] for r in records} == {"en", "zh"}
    assert len({r["id"] for r in records}) == len(records)
    # no fine-tuning format in general text
    assert not any("###" in r["text"] or "<|user|>" in r["text"] for r in records)
    assert make_data.general_probe(1) != make_data.general_probe(0)


def test_bad_probe_records_are_refused_with_file_and_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(ProbeError, match=r"p\.jsonl:2: expected"):
        read_probe(bad)
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', encoding="utf-8")
    with pytest.raises(ProbeError, match=r"p\.jsonl:2: duplicate id 'a'"):
        read_probe(bad)
    assert len(read_probe(PROBE, max_examples=5)) == 5


# --- scoring --------------------------------------------------------------------------


def test_from_probe_is_token_weighted_and_per_example_is_the_difference():
    scores = Forgetting.from_probe({"a": (2.0, 1), "b": (6.0, 3)}, {"a": (3.0, 1), "b": (9.0, 3)})
    assert scores.aggregate["probe_loss_before"] == pytest.approx(8.0 / 4)
    assert scores.aggregate["probe_loss_after"] == pytest.approx(12.0 / 4)
    assert scores.aggregate["forgetting"] == pytest.approx(1.0)
    assert scores.per_example == [("a", "forgetting", 1.0), ("b", "forgetting", 1.0)]
    with pytest.raises(ValueError, match="differ in examples"):
        Forgetting.from_probe({"a": (1.0, 1)}, {"b": (1.0, 1)})
    with pytest.raises(ValueError, match="token counts"):
        Forgetting.from_probe({"a": (1.0, 2)}, {"a": (1.0, 3)})
    with pytest.raises(TypeError, match="from_probe"):
        build_evaluator("forgetting", {"probe": "x"}).score([])
    assert get_evaluator("forgetting").reads_probe and not get_evaluator("loss").reads_probe


def test_before_is_the_base_model_loss_and_a_training_step_changes_after():
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL)
    torch.manual_seed(0)
    cfg = _cfg(max_examples=8)
    probes = ProbeSet.before_training(model, tok, cfg, {"eval.forgetting.probe": str(PROBE)})
    examples = probes.examples["forgetting"]
    assert len(examples) == 8
    # "before" equals the base model's loss computed directly, one paragraph at a time
    # (transformers' own shifted cross-entropy: the mean NLL of the text tokens).
    model.eval()
    for e in examples:
        ids = torch.tensor([e.input_ids])
        with torch.no_grad():
            direct = model(input_ids=ids, labels=torch.tensor([e.labels])).loss.item()
        nll, n = probes.before["forgetting"][e.example_id]
        assert n == len(e.input_ids) - 1  # every token after BOS carries loss
        assert nll / n == pytest.approx(direct, rel=1e-5)
    unchanged = probes.score("forgetting", model, tok, 16)
    assert unchanged.aggregate["forgetting"] == 0.0
    # one large optimisation step on something else changes the probe loss
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=1.0)
    batch = tok(["### Instruction:\nred\n\n### Response:\n红色"] * 4, return_tensors="pt")
    model(**batch, labels=batch["input_ids"]).loss.backward()
    optim.step()
    after = probes.score("forgetting", model, tok, 16)
    agg = after.aggregate
    assert agg["probe_loss_before"] == unchanged.aggregate["probe_loss_before"]
    assert agg["probe_loss_after"] != agg["probe_loss_before"]
    assert agg["forgetting"] == pytest.approx(agg["probe_loss_after"] - agg["probe_loss_before"])
    assert len(after.per_example) == 8


# --- configuration --------------------------------------------------------------------


def _exp(write_exp, probe: str) -> Path:
    text = experiment_yaml().replace(
        "  evaluators: [loss, exact_match]\n",
        f"  evaluators: [loss, exact_match, forgetting]\n"
        f"  evaluator_params:\n    forgetting: {{probe: {probe}}}\n",
    )
    return write_exp(text)


def test_probe_is_fingerprinted_into_the_run_ids(write_exp, tmp_path):
    probe = tmp_path / "probe.jsonl"
    probe.write_bytes(PROBE.read_bytes())
    first = load_experiment(_exp(write_exp, "probe.jsonl"))
    assert first.fingerprints["eval.forgetting.probe"]
    assert first.paths["eval.forgetting.probe"] == str(probe.resolve())
    probe.write_text('{"id": "x", "text": "red is a color."}\n', encoding="utf-8")
    second = load_experiment(_exp(write_exp, "probe.jsonl"))
    assert {r.run_id for r in first.runs}.isdisjoint(r.run_id for r in second.runs)


def test_missing_probe_is_a_clear_error_with_its_line(write_exp):
    path = _exp(write_exp, "nowhere.jsonl")
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    text = str(caught.value)
    assert "eval.evaluator_params.forgetting.probe" in text
    assert "file not found" in text and "nowhere.jsonl" in text
    line = next(i for i, s in enumerate(path.read_text().splitlines(), 1) if "nowhere" in s)
    assert f"{path.name}:{line}" in text


def test_shipped_demo_measures_forgetting():
    exp = load_experiment(REPO / "experiments" / "grid.yaml")
    assert "forgetting" in exp.spec.eval.evaluators
    assert Path(exp.paths["eval.forgetting.probe"]) == PROBE.resolve()


# --- the report section's view-model ----------------------------------------------------


class _Row:
    def __init__(self, method: str, primary: list[float], forgetting: list[float] | None):
        self.method = self.label = method
        self.config = "—"
        self.primary = summarize(primary)
        self.metrics = {"exact_match": self.primary}
        if forgetting is not None:
            self.metrics["forgetting"] = summarize(forgetting)
            self.metrics["probe_loss_after"] = summarize([1.0 + f for f in forgetting])


def test_section_rows_gain_over_base_and_forgetting_over_seeds():
    leaders = [
        _Row("full", [0.8, 0.9, 0.85], [2.0, 2.5, 2.2]),
        _Row("lora", [0.6, 0.7, 0.65], [0.01, -0.01, 0.0]),
        _Row("base", [0.1], [0.0]),
    ]
    rows = forgetting_rows(leaders, "exact_match", higher=True)
    full, lora, base = rows
    assert full.gained is not None and full.gained.mean == pytest.approx(0.85 - 0.1)
    assert full.gained.low == pytest.approx(leaders[0].primary.low - 0.1)
    assert full.forgetting.n == 3 and full.forgetting.low is not None and full.forgetting.low > 0
    assert full.verdict == "gained quality, lost general ability"
    assert lora.verdict == "gained quality, no detectable loss of general ability"
    assert base.gained is None and base.verdict == "the reference (not trained)"
    assert lora.probe_after.mean == pytest.approx(1.0)


def test_section_for_lower_is_better_and_without_base_or_probe():
    loss_rows = [_Row("lora", [1.0, 1.2], [0.5, 0.7]), _Row("base", [2.0], [0.0])]
    lora = forgetting_rows(loss_rows, "eval_loss", higher=False)[0]
    assert lora.gained is not None and lora.gained.mean == pytest.approx(2.0 - 1.1)
    assert lora.gained.low == pytest.approx(2.0 - loss_rows[0].primary.high)
    no_base = forgetting_rows([_Row("lora", [1.0, 1.2], [0.5, 0.6, 0.7])], "eval_loss", False)
    assert no_base[0].gained is None and no_base[0].verdict == "lost general ability"
    two_seeds = forgetting_rows([_Row("lora", [1.0, 1.2], [0.5, 0.7])], "eval_loss", False)
    assert two_seeds[0].verdict == "no detectable loss of general ability"  # t(1) is wide
    assert forgetting_rows([_Row("lora", [1.0], None)], "eval_loss", False) == []


def test_section_figure_is_safe_inline_svg():
    from ftsweep.report.forgetting_plot import forgetting_svg

    leaders = [_Row("<script>x</script>", [0.8, 0.9], [2.0, 2.5]), _Row("base", [0.1], [0.0])]
    svg = str(forgetting_svg(forgetting_rows(leaders, "exact_match", True), "exact_match", "fg"))
    assert svg.startswith("<svg") and 'id="fg-' in svg
    assert "<script" not in svg and "<!--" not in svg  # names are drawn as glyph paths
    no_base = forgetting_rows([_Row("lora", [0.5, 0.6], [0.1, 0.2])], "exact_match", True)
    assert "<svg" in str(forgetting_svg(no_base, "exact_match", "nb"))


# --- through the worker ----------------------------------------------------------------


@pytest.mark.slow
def test_a_launched_run_stores_forgetting_against_the_base_model(write_exp, tmp_path):
    """One tiny LoRA run and the untrained base, through `ftsweep launch` and the store."""
    from ftsweep.cli import main
    from ftsweep.store import run_query
    from ftsweep.workspace import Workspace

    text = experiment_yaml(max_steps=6).replace(
        "  evaluators: [loss, exact_match]\n",
        f"  evaluators: [loss, exact_match, forgetting]\n"
        f"  evaluator_params:\n    forgetting: {{probe: {PROBE}, max_examples: 8}}\n",
    )
    ws = tmp_path / "ws"
    assert main(["--workspace", str(ws), "launch", str(write_exp(text))]) == 0
    _, rows = run_query(
        Workspace(ws),
        "select r.method, e.metric, e.value from evals e join runs r using (run_id) "
        "where e.metric like 'probe%' or e.metric = 'forgetting' order by 1, 2",
    )
    got = {(m, metric): v for m, metric, v in rows}
    tok = AutoTokenizer.from_pretrained(MODEL)
    base = AutoModelForCausalLM.from_pretrained(MODEL)
    direct = ProbeSet.before_training(
        base, tok, _cfg(max_examples=8), {"eval.forgetting.probe": str(PROBE)}
    )
    before = direct.before["forgetting"]
    expected = sum(nll for nll, _ in before.values()) / sum(n for _, n in before.values())
    for method in ("base", "lora"):
        assert got[(method, "probe_loss_before")] == pytest.approx(expected, rel=1e-5)
    assert got[("base", "forgetting")] == 0.0
    assert got[("lora", "probe_loss_after")] != got[("lora", "probe_loss_before")]
    _, split_rows = run_query(
        Workspace(ws),
        "select split, count(*) from eval_examples where metric = 'forgetting' group by 1",
    )
    assert split_rows == [("probe", 16)]  # 8 paragraphs x 2 runs, apart from the test split
