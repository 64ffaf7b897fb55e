"""A run killed at any phase and relaunched equals an uninterrupted run (issue 8, item 6).

Each case starts a sweep with FTSWEEP_FAULT=stop:<point> (ftsweep/worker/faults.py): the
worker freezes itself exactly there, and the test SIGKILLs the launcher and the worker's
process group together, as a lost machine would. A plain relaunch then finishes the
run, and its step count, logged metrics, final and best evaluation, per-example scores
and saved adapter must equal those of the uninterrupted run bit for bit. Its times must
cover both attempts (items 7 and 8).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from ftsweep.cli import main
from ftsweep.config.load import load_experiment
from ftsweep.rundir import RunDir, read_jsonl
from ftsweep.workspace import Workspace
from tests.conftest import REPO, experiment_yaml

pytestmark = pytest.mark.slow

MAX_STEPS = 6
# 32 samples / batch 8 = 4 steps an epoch: the run crosses an epoch boundary at step 4.
# Checkpoints at 2, 4, 6; logging and evaluation every 2 steps, aligned with them.


def _experiment(tmp: Path) -> Path:
    text = experiment_yaml(
        "resume",
        matrix="matrix:\n  method: [{name: lora, r: 4}]\n",
        max_steps=MAX_STEPS,
        launch="{threads_per_process: 1}",
    )
    text = text.replace(
        "logging_every: 2", "logging_every: 2\n  checkpoint_every: 2\n  eval_every: 2"
    ).replace("max_train_samples: 128", "max_train_samples: 32\n  max_eval_samples: 16")
    path = tmp / "resume.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _run_dir(ws: Path, exp: Path) -> RunDir:
    (run,) = load_experiment(exp).runs
    return Workspace(ws).run_dir("resume", run.run_id)


def _outcome(rd: RunDir) -> dict[str, Any]:
    """What must not depend on where the run was killed (timings excluded)."""
    result = json.loads(rd.file("result.json").read_text())
    metrics = {
        (r["step"], r["name"]): r["value"]
        for r in read_jsonl(rd.file("metrics.jsonl"))
        if r["name"] != "tokens_per_s"
    }  # a speed, measured
    adapter = rd.file("artifacts") / "adapter_model.safetensors"
    return {
        "steps": result["steps"],
        "tokens_seen": result["tokens_seen"],
        "final_eval": result["final_eval"],
        "best_eval": result["best_eval"],
        "best_step": result["best_step"],
        "metrics": metrics,
        "metric_rows": len(read_jsonl(rd.file("metrics.jsonl"))),
        "evals": sorted(map(json.dumps, read_jsonl(rd.file("evals.jsonl")))),
        "adapter_sha256": hashlib.sha256(adapter.read_bytes()).hexdigest(),
    }


# The uninterrupted run is memoised in the module, not only held by a module fixture:
# an xdist worker tears fixtures down whenever its queue runs short, and the fixture
# would then train it again. (Each xdist worker still trains its own.)
_REFERENCE: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if "outcome" not in _REFERENCE:
        _REFERENCE["outcome"] = _uninterrupted(tmp_path_factory)
    return _REFERENCE["outcome"]


def _uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("reference")
    exp = _experiment(tmp)
    assert main(["--workspace", str(tmp / "ws"), "launch", str(exp)]) == 0
    out = _outcome(_run_dir(tmp / "ws", exp))
    assert out["steps"] == MAX_STEPS and ("eval_loss" in out["final_eval"])
    return out


def _stopped_worker(rd: RunDir, launcher: subprocess.Popen, timeout: float) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        hb = rd.heartbeat()
        if hb:
            try:
                if psutil.Process(int(hb["pid"])).status() == psutil.STATUS_STOPPED:
                    return int(hb["pid"])
            except psutil.NoSuchProcess:
                pass
        if launcher.poll() is not None:
            break
        time.sleep(0.1)
    log = rd.file("worker.log")
    raise AssertionError(
        f"the worker did not stop at its fault point (launcher rc "
        f"{launcher.poll()}); log: {log.read_text()[-2000:] if log.exists() else ''}"
    )


def _kill_at(ws: Path, exp: Path, point: str) -> None:
    """Launch; when the worker freezes at ``point``, SIGKILL it and the launcher."""
    rd = _run_dir(ws, exp)
    env = {**os.environ, "FTSWEEP_FAULT": f"stop:{point}"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(exp)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        pid = _stopped_worker(rd, launcher, 240)
        os.killpg(launcher.pid, signal.SIGKILL)
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    finally:
        launcher.wait(timeout=30)
    deadline = time.time() + 30
    while psutil.pid_exists(pid) and time.time() < deadline:
        time.sleep(0.1)


CASES = {
    "before the first checkpoint": ("step-1", None),
    "between checkpoints": ("step-3", 2),
    "after the last checkpoint": ("trained", MAX_STEPS),
    "during the final evaluation": ("evaluate", MAX_STEPS),
    "after result.json": ("result", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_run_killed_at_any_phase_resumes_to_the_uninterrupted_result(
    case: str, reference: dict[str, Any], tmp_path: Path
) -> None:
    point, checkpoint = CASES[case]
    exp = _experiment(tmp_path)
    ws = tmp_path / "ws"
    rd = _run_dir(ws, exp)
    _kill_at(ws, exp, point)
    ckpts = sorted(p.name for p in rd.file("checkpoints").glob("checkpoint-*"))
    if checkpoint is not None:
        assert ckpts == [f"checkpoint-{checkpoint}"]
    assert rd.file("result.json").exists() == (point == "result")

    assert main(["--workspace", str(ws), "launch", str(exp)]) == 0
    assert _outcome(rd) == reference

    # times: every attempt is counted, set-up apart from the loop
    result = json.loads(rd.file("result.json").read_text())
    attempts = read_jsonl(rd.file("attempts.jsonl"))
    if point == "result":  # complete before the kill: nothing ran again
        assert result["attempts"] == 1
        return
    assert [a["outcome"] for a in attempts] == ["interrupted", "complete"]
    assert result["attempts"] == 2
    assert result["train_time_s"] == pytest.approx(sum(a["train_s"] for a in attempts))
    assert result["setup_time_s"] == pytest.approx(sum(a["setup_s"] for a in attempts))
    assert result["wall_time_s"] == pytest.approx(
        sum(a["last_seen"] - a["started_at"] for a in attempts), abs=0.5
    )
    assert attempts[0]["setup_s"] > 0 and result["setup_time_s"] > attempts[1]["setup_s"]
    tokens = sum(a["tokens"] for a in attempts)
    assert result["tokens_per_s"] == pytest.approx(tokens / result["train_time_s"])
    if checkpoint:  # the killed attempt trained: its loop time and tokens count too
        assert attempts[0]["train_s"] > 0 and attempts[0]["tokens"] > 0
        assert result["started_at"] == attempts[0]["started_at"]
    if point in ("trained", "evaluate"):  # resumed with nothing left to train
        assert attempts[1]["train_s"] == 0 and attempts[1]["tokens"] == 0
        assert tokens == result["tokens_seen"]
