"""Training options from the YAML reach the Trainer, and a run using them all completes."""

from __future__ import annotations

import json

import pytest

from ftsweep.config.load import load_experiment
from ftsweep.rundir import SPEC, RunDir, atomic_write_json
from ftsweep.worker.trainer import training_arguments
from tests.conftest import experiment_yaml

OPTIONS = """\
  optimizer: adafactor
  scheduler: cosine
  warmup_ratio: 0.2
  weight_decay: 0.01
  group_by_length: true
  neftune_alpha: 5.0
  gradient_checkpointing: true
  grad_accum: 2
  eval_every: 2
  early_stopping: {patience: 3, threshold: 0.0}
"""


@pytest.fixture
def spec(write_exp):
    text = experiment_yaml("opts", matrix="matrix:\n  method: [full]\n", max_steps=4)
    text = text.replace("  logging_every: 2\n", "  logging_every: 2\n" + OPTIONS)
    text = text.replace("  max_train_samples: 128\n", "  max_train_samples: 128\n  packing: true\n")
    (run,) = load_experiment(write_exp(text)).runs
    return run


def test_options_map_onto_training_arguments(spec, tmp_path):
    args = training_arguments(spec.config, RunDir(tmp_path), has_eval=True)
    assert args.optim == "adafactor" and args.lr_scheduler_type == "cosine"
    assert args.warmup_steps == 0.2 and args.weight_decay == 0.01
    assert args.train_sampling_strategy == "group_by_length"
    assert args.neftune_noise_alpha == 5.0 and args.gradient_checkpointing
    assert args.gradient_accumulation_steps == 2 and args.eval_steps == 2
    assert not args.logging_nan_inf_filter  # NaN must show in the logs


@pytest.mark.slow
def test_a_run_with_every_option_completes_in_process(spec, tmp_path, monkeypatch):
    """The worker's story without accelerate launch (one process is a valid world)."""
    from ftsweep.worker.__main__ import run

    monkeypatch.setenv("FTSWEEP_THREADS", "1")
    rd = RunDir(tmp_path / spec.run_id)
    rd.path.mkdir()
    atomic_write_json(rd.file(SPEC), spec.to_json())
    result = run(rd.path)
    assert result["status"] == "complete" and result["steps"] == 4
    # packing: every training row is a full block of max_length tokens but the last
    assert result["tokens_seen"] >= 4 * 2 * 8 * 63
    saved = json.loads((rd.file("artifacts") / "training_config.json").read_text())
    assert saved["training"]["optimizer"] == "adafactor" and saved["data"]["packing"]
    assert {m["name"] for m in rd.metrics()} >= {"loss", "eval_loss", "lr"}
