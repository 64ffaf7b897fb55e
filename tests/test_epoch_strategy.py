"""Evaluation and checkpoints by epoch (training.eval_strategy / checkpoint_strategy)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ftsweep.config.load import ConfigError, load_experiment
from ftsweep.config.schema import TrainingBlock
from ftsweep.rundir import RunDir
from ftsweep.worker.trainer import evaluates_during_training, training_arguments
from tests.conftest import experiment_yaml


def _config(write_exp, training: str, extra: str = ""):
    text = experiment_yaml("ep", matrix="matrix:\n  method: [lora]\n", extra=extra)
    text = text.replace("  logging_every: 2\n", "  logging_every: 2\n" + training)
    (run,) = load_experiment(write_exp(text)).runs
    return run.config


def test_epoch_strategies_reach_the_trainer(write_exp, tmp_path):
    cfg = _config(
        write_exp,
        "  eval_strategy: epoch\n  checkpoint_strategy: epoch\n  early_stopping: {patience: 2}\n",
    )
    assert evaluates_during_training(cfg["training"])
    args = training_arguments(cfg, RunDir(tmp_path), has_eval=True)
    assert args.eval_strategy == "epoch" and args.save_strategy == "epoch"
    assert args.eval_steps is None
    args = training_arguments(cfg, RunDir(tmp_path), has_eval=False)  # no eval split
    assert args.eval_strategy == "no"


def test_step_strategies_are_unchanged(write_exp, tmp_path):
    cfg = _config(write_exp, "  eval_every: 3\n  checkpoint_every: 5\n")
    args = training_arguments(cfg, RunDir(tmp_path), has_eval=True)
    assert (args.eval_strategy, args.eval_steps) == ("steps", 3)
    assert (args.save_strategy, args.save_steps) == ("steps", 5)
    cfg = _config(write_exp, "")
    assert not evaluates_during_training(cfg["training"])
    assert training_arguments(cfg, RunDir(tmp_path), has_eval=False).save_strategy == "no"


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ({"eval_strategy": "epoch", "eval_every": 2}, "unset eval_every"),
        ({"checkpoint_strategy": "epoch", "checkpoint_every": 2}, "unset checkpoint_every"),
        ({"early_stopping": {"patience": 2}}, "eval_strategy: epoch"),
        ({"eval_strategy": "epochs"}, "'steps' or 'epoch'"),
    ],
)
def test_contradictory_strategies_are_refused(block, fragment):
    with pytest.raises(ValidationError, match=fragment):
        TrainingBlock.model_validate(block)


SEARCH = """\
search:
  n_trials: 2
  pruner: {type: median}
  space:
    method:
      - {name: lora, r: {choices: [4, 8]}}
"""


def test_pruning_accepts_evals_by_epoch(write_exp):
    text = experiment_yaml("ep", extra=SEARCH).replace("matrix:\n", "unused:\n", 1)
    text = text.split("unused:\n")[0] + SEARCH
    with pytest.raises(ConfigError, match="training.eval_every"):
        load_experiment(write_exp(text))
    by_epoch = text.replace("  logging_every: 2\n", "  logging_every: 2\n  eval_strategy: epoch\n")
    assert load_experiment(write_exp(by_epoch)).search is not None
