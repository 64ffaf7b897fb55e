"""Times over a run's attempts (issue 8, items 7 and 8) and the final-checkpoint check (6).

Fast: no worker process. The end-to-end resume at every phase is test_resume_exact.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from ftsweep.rundir import ATTEMPT, ATTEMPTS, RunDir, atomic_write_json, read_jsonl
from ftsweep.worker.attempts import Attempt, LoopClock, attempt_records, totals
from ftsweep.worker.trainer import training_finished_at


def _record(id_: str, started: float, last_seen: float, **times: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "host": "h",
        "pid": 1,
        "started_at": started,
        "last_seen": last_seen,
        "outcome": "running",
        "setup_s": None,
        "train_s": 0.0,
        "tokens": 0,
        "first_step": 0,
        "last_step": 0,
        "eval_s": 0.0,
        "save_s": 0.0,
        **times,
    }


def test_times_sum_every_attempt_and_a_killed_one_counts_once(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    killed = _record("a", 1000.0, 1050.0, setup_s=8.0, train_s=40.0, tokens=4000)
    atomic_write_json(run.file(ATTEMPT), killed)  # what a SIGKILLed attempt leaves
    attempt = Attempt.begin(run, started=2000.0)
    assert [r["outcome"] for r in read_jsonl(run.file(ATTEMPTS))] == ["interrupted"]
    # killed again between the append and removing attempt.json: appended twice, counted once
    atomic_write_json(run.file(ATTEMPT), killed)
    Attempt.begin(run, started=2001.0).end("failed")
    assert len(read_jsonl(run.file(ATTEMPTS))) == 3 and len(attempt_records(run)) == 2

    current = _record(attempt.record["id"], 3000.0, 3030.0, setup_s=6.0, train_s=20.0, tokens=3000)
    got = totals(run, current)
    failed = attempt_records(run)[1]
    assert got["attempts"] == 3 and got["started_at"] == 1000.0
    assert got["train_time_s"] == pytest.approx(60.0)
    assert got["setup_time_s"] == pytest.approx(14.0 + failed["setup_s"])
    assert got["wall_time_s"] == pytest.approx(50.0 + 30.0 + failed["last_seen"] - 2001.0)
    # the speed of the loop over all attempts, not all tokens over the last attempt's time
    assert got["tokens_per_s"] == pytest.approx(7000 / 60.0)


def test_an_attempt_killed_during_set_up_counts_its_time_as_set_up(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    atomic_write_json(run.file(ATTEMPT), _record("a", 1000.0, 1012.5))  # never reached the loop
    Attempt.begin(run, started=2000.0)
    (rec,) = attempt_records(run)
    assert rec["setup_s"] == pytest.approx(12.5) and rec["train_s"] == 0.0


def test_launch_json_sums_the_process_groups_of_every_attempt(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    # written by an ftsweep that kept only the last process group
    atomic_write_json(
        run.file("launch.json"),
        {"submitted_at": 1.0, "exited_at": 8.0, "returncode": -9, "process_wall_s": 7.0},
    )
    run.record_process(100.0, 130.0, 0, ["accelerate"])
    run.record_process(100.0, 131.0, 0, ["accelerate"])  # the same group recorded again
    launch = json.loads(run.file("launch.json").read_text())
    assert launch["process_wall_s"] == pytest.approx(38.0)
    assert [a["returncode"] for a in launch["attempts"]] == [-9, 0]


def _state(ckpt: Path, step: int, max_steps: int, stopped_early: bool | None = None) -> Path:
    ckpt.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"global_step": step, "max_steps": max_steps, "stateful_callbacks": {}}
    if stopped_early is not None:
        state["stateful_callbacks"]["EarlyStopping"] = {
            "args": {},
            "attributes": {"stopped_early": stopped_early},
        }
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    return ckpt


def test_a_checkpoint_where_training_ended_is_recognised(tmp_path: Path) -> None:
    assert training_finished_at(_state(tmp_path / "a", 20, 20))
    assert not training_finished_at(_state(tmp_path / "b", 18, 20))
    assert training_finished_at(_state(tmp_path / "c", 12, 20, stopped_early=True))
    assert not training_finished_at(_state(tmp_path / "d", 12, 20, stopped_early=False))


def test_set_up_inside_train_is_kept_out_of_the_loop_time(tmp_path: Path) -> None:
    """The Trainer builds its optimizer (DeepSpeed: CPUAdam's op build) inside train():
    timing train() made that set-up look like training."""
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    slow_setup = 1.5

    class SlowOptimizer(Trainer):
        def create_optimizer(self, *a: Any, **kw: Any) -> Any:
            time.sleep(slow_setup)
            return super().create_optimizer(*a, **kw)

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    ids = torch.randint(0, 32, (4, 8))
    data = [{"input_ids": row, "labels": row} for row in ids]
    run = RunDir(tmp_path)
    started = time.time()
    attempt = Attempt.begin(run, started)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        include_num_input_tokens_seen="all",
    )
    trainer = SlowOptimizer(
        model=model, args=args, train_dataset=data, callbacks=[LoopClock(attempt, started)]
    )
    t0 = time.time()
    trainer.train()
    whole = time.time() - t0
    rec = attempt.snapshot()
    assert rec["setup_s"] >= slow_setup
    assert rec["train_s"] <= whole - slow_setup
    assert rec["tokens"] == 2 * 2 * 8 and (rec["first_step"], rec["last_step"]) == (0, 2)


def test_two_threads_writing_one_json_file_never_collide(tmp_path):
    """The heartbeat thread and the training loop both save attempt.json; with one
    temporary name per process, one thread's rename took the other's file away
    (FileNotFoundError in a full test run)."""
    import threading

    from ftsweep.rundir import atomic_write_json

    path, errors = tmp_path / "attempt.json", []

    def write(n: int) -> None:
        try:
            for i in range(300):
                atomic_write_json(path, {"writer": n, "i": i})
        except OSError as exc:  # pragma: no cover - the failure this test is about
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads(path.read_text())["i"] == 299
    assert not list(tmp_path.glob(".attempt.json.*"))
