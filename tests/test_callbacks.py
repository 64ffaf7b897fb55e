"""Worker hooks in isolation: early stopping and the non-finite guard on logged values."""

from __future__ import annotations

import pytest
from transformers import TrainerControl, TrainerState

from ftsweep.rundir import RunDir, read_jsonl
from ftsweep.worker.callbacks import EarlyStopping, MetricsCallback, NonFiniteLossError, Progress


def _evaluate(cb: EarlyStopping, step: int, loss: float) -> TrainerControl:
    control = TrainerControl()
    cb.on_evaluate(None, TrainerState(global_step=step), control, metrics={"eval_loss": loss})
    return control


def test_early_stopping_needs_improvement_beyond_threshold():
    cb = EarlyStopping(patience=2, threshold=0.1)
    assert not _evaluate(cb, 10, 1.0).should_training_stop
    assert not _evaluate(cb, 20, 0.95).should_training_stop  # better, but not by 0.1
    assert _evaluate(cb, 30, 0.92).should_training_stop  # second eval without improvement
    assert cb.best == 1.0 and cb.best_step == 10 and cb.stopped_early
    assert cb.best_metrics == {"eval_loss": 1.0}


def test_early_stopping_off_only_tracks_the_best():
    cb = EarlyStopping(patience=None, threshold=0.0)
    for step, loss in ((10, 2.0), (20, 1.0), (30, 3.0), (40, 4.0), (50, 5.0)):
        assert not _evaluate(cb, step, loss).should_training_stop
    assert (cb.best, cb.best_step) == (1.0, 20)


def test_logged_values_go_to_the_metrics_log_and_inf_grad_norm_fails(tmp_path):
    run = RunDir(tmp_path)
    cb = MetricsCallback(run, Progress(), is_main=True)
    state = TrainerState(global_step=5, epoch=0.5)
    cb.on_train_begin(None, state, TrainerControl())
    cb.on_log(
        None,
        state,
        TrainerControl(),
        logs={"loss": 2.0, "learning_rate": 1e-3, "grad_norm": 0.5, "epoch": 0.5},
    )
    names = {r["name"]: r["value"] for r in read_jsonl(tmp_path / "metrics.jsonl")}
    assert names.keys() == {"loss", "lr", "grad_norm", "tokens_per_s"}
    assert names["lr"] == 1e-3
    with pytest.raises(NonFiniteLossError, match="gradient norm"):
        cb.on_log(None, state, TrainerControl(), logs={"loss": 2.0, "grad_norm": float("inf")})


def test_early_stopping_state_survives_a_checkpoint():
    cb = EarlyStopping(patience=3, threshold=0.0)
    _evaluate(cb, 10, 1.0)
    _evaluate(cb, 20, 1.5)
    restored = EarlyStopping.from_state(cb.state())
    assert (restored.best, restored.best_step, restored.bad_evals) == (1.0, 10, 1)
    assert not _evaluate(restored, 30, 1.2).should_training_stop
    assert _evaluate(restored, 40, 1.2).should_training_stop  # third miss in a row
