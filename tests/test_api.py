"""The Python API: one tiny run launched through it (evals by epoch, sampled generation
with answer extraction), and what runs() returns checked against `ftsweep query`."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import ftsweep
from ftsweep.cli import main
from ftsweep.errors import ConfigError
from ftsweep.rundir import GENERATIONS, RunDir
from tests.conftest import experiment_yaml

TRAINING = (
    "  eval_strategy: epoch\n  checkpoint_strategy: epoch\n"
    "  early_stopping: {patience: 5}\n"  # counts epoch evals; never stops in 2 epochs
)
EVAL = """\
eval:
  split: test
  evaluators: [loss, exact_match, pass_at_k, majority_vote]
  primary_metric: majority_vote
  answer_extraction: last_number
  generation: {do_sample: true, temperature: 1.0, num_samples: 2, max_new_tokens: 6}
  max_examples: 8
"""


# One test trains one run through the API and checks it three ways (one test, not three
# sharing a fixture: xdist may put tests on different workers, each training again).
@pytest.mark.slow
def test_a_run_launched_through_the_api(tmp_path_factory, capsys):
    launched = _launch(tmp_path_factory)
    _launch_through_the_api_trains_the_run(launched)
    _evals_by_epoch_and_raw_samples_reach_the_run_directory(launched)
    capsys.readouterr()  # what launch printed
    _runs_matches_ftsweep_query(launched, capsys)


def _launch(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    text = experiment_yaml("api", matrix="matrix:\n  method:\n    - {name: lora, r: 4}\n")
    # 32 examples x batch 8: 4 steps an epoch, 2 epochs
    text = text.replace("  max_steps: 10\n", "  epochs: 2\n" + TRAINING)
    text = text.replace("max_train_samples: 128", "max_train_samples: 32")
    head, tail = text.split("eval:\n", 1)
    text = head + EVAL + tail.split("  max_examples: 16\n", 1)[1]
    path = root / "api.yaml"
    path.write_text(text)
    ws = root / "ws"
    before = ftsweep.plan(path, ws)
    summary = ftsweep.launch(ftsweep.load_experiment(path), ws)
    return path, ws, before, summary


def _launch_through_the_api_trains_the_run(launched):
    path, ws, before, summary = launched
    assert list(before["action"]) == ["train"] and list(before["state"]) == ["new"]
    assert summary.exit_code == 0 and len(summary.complete) == 1
    after = ftsweep.plan(path, ws)
    assert list(after["action"]) == ["skip"] and list(after["state"]) == ["complete"]
    assert list(after["run_id"]) == list(before["run_id"])


def _evals_by_epoch_and_raw_samples_reach_the_run_directory(launched):
    path, ws, before, _ = launched
    (run_id,) = before["run_id"]
    run = RunDir(ws / "runs" / "api" / run_id)
    steps = sorted(m["step"] for m in run.metrics() if m["name"] == "eval_loss")
    assert steps == [4, 8]  # one eval at each epoch's end
    result = run.result()
    assert result is not None and result["best_step"] in (4, 8)  # early stopping saw them
    assert not result["stopped_early"] and result["steps"] == 8
    records = [json.loads(x) for x in run.file(GENERATIONS).read_text().splitlines()]
    assert len(records) == 8 and all(len(r["samples"]) == 2 for r in records)


def _runs_matches_ftsweep_query(launched, capsys):
    path, ws, before, _ = launched
    (run_id,) = before["run_id"]
    df = ftsweep.runs(ws, experiment="api")
    assert list(df["run_id"]) == [run_id]
    row = df.iloc[0]
    assert row["status"] == "complete" and row["method"] == "lora" and row["params"] == {"r": 4}
    assert main(["--workspace", str(ws), "query", "--json", "select * from runs"]) == 0
    (expected,) = json.loads(capsys.readouterr().out)
    for column in ("run_id", "experiment", "method", "status", "seed", "steps"):
        assert row[column] == expected[column], column
    assert row["wall_time_s"] == pytest.approx(expected["wall_time_s"])
    sql = f"select metric, value from evals where run_id = '{run_id}'"
    assert main(["--workspace", str(ws), "query", "--json", sql]) == 0
    metrics = {r["metric"]: r["value"] for r in json.loads(capsys.readouterr().out)}
    assert set(metrics) == {
        "eval_loss",
        "perplexity",
        "exact_match",
        "pass@1",
        "pass@2",
        "majority_vote",
    }
    for metric, value in metrics.items():
        assert math.isclose(row[metric], value), metric
    assert ftsweep.query(sql, ws).set_index("metric")["value"].to_dict() == pytest.approx(metrics)
    assert ftsweep.runs(ws, experiment="api", status="failed").empty
    assert ftsweep.runs(ws, experiment="other").empty


def test_bad_file_raises_config_error_with_location(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(experiment_yaml("bad").replace("  lr: 1.0e-3\n", "  lr: -1\n"))
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: training\.lr"):
        ftsweep.load_experiment(bad)


def test_import_ftsweep_stays_light():
    code = (
        "import sys, ftsweep; "
        "heavy = [m for m in ('torch', 'pandas', 'transformers', 'duckdb') if m in sys.modules]; "
        "assert not heavy, heavy; assert callable(ftsweep.runs)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
