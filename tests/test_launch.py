"""End to end through `accelerate launch`: train, relaunch, DDP, failures, kills, readers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ftsweep.cli import main
from ftsweep.config.load import load_experiment
from ftsweep.plan import Action, plan
from ftsweep.rundir import read_jsonl
from ftsweep.store import run_query
from ftsweep.workspace import Workspace
from tests.conftest import REPO, experiment_yaml

pytestmark = pytest.mark.slow


def cli(ws: Path, *args: str) -> int:
    return main(["--workspace", str(ws), *args])


def query(ws: Path, sql: str) -> list[tuple]:
    return run_query(Workspace(ws), sql)[1]


def test_launch_relaunch_query_report_rebuild(write_exp, tmp_path, capsys):
    ws = tmp_path / "ws"
    exp_file = write_exp(
        experiment_yaml(
            "e2e",
            matrix=textwrap.dedent("""\
        matrix:
          method:
            - base
            - {name: full, training.lr: [1e-3]}
            - {name: lora, r: [4], training.lr: [1e-2]}
            - {name: prefix, num_virtual_tokens: 4, training.lr: [1e-1]}
        """),
            launch="{max_parallel: 2}",
            max_steps=8,
        )
    )
    assert cli(ws, "launch", str(exp_file)) == 0
    runs = {r.method: r for r in load_experiment(exp_file).runs}
    for method, run in runs.items():
        rd = Workspace(ws).run_dir("e2e", run.run_id)
        result = json.loads(rd.file("result.json").read_text())
        assert result["status"] == "complete"
        assert set(result["final_eval"]) == {"eval_loss", "perplexity", "exact_match"}
        art = rd.file("artifacts")
        assert (art / "training_config.json").is_file() and (art / "tokenizer.json").is_file()
        assert not list(art.rglob("*.bin")) and not list(art.rglob("*.pt"))  # safetensors only
        prov = json.loads(rd.file("provenance.json").read_text())
        assert prov["packages"]["torch"] and "git_dirty" in prov and prov["host"]
        if method == "base":
            assert result["steps"] == 0 and result["trainable_params"] == 0
        else:
            assert result["steps"] == 8 and result["tokens_per_s"] > 0
            names = {m["name"] for m in read_jsonl(rd.file("metrics.jsonl"))}
            assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= names
    assert (
        Workspace(ws).run_dir("e2e", runs["lora"].run_id).file("artifacts")
        / "adapter_model.safetensors"
    ).is_file()
    lora, full = (
        json.loads(Workspace(ws).run_dir("e2e", runs[m].run_id).file("result.json").read_text())
        for m in ("lora", "full")
    )
    assert 0 < lora["trainable_params"] < full["trainable_params"] == full["total_params"]

    # the store: one row per run, metrics in long form without duplicates
    assert sorted(query(ws, "select method, status from runs")) == [
        ("base", "complete"),
        ("full", "complete"),
        ("lora", "complete"),
        ("prefix", "complete"),
    ]
    assert query(
        ws,
        "select count(*) from (select run_id, step, name from metrics "
        "group by all having count(*) > 1)",
    ) == [(0,)]
    assert query(ws, "select count(*) from eval_examples where metric = 'exact_match'") == [(64,)]

    # relaunch trains nothing and is quick
    logs = {
        m: Workspace(ws).run_dir("e2e", r.run_id).file("worker.log").stat().st_mtime_ns
        for m, r in runs.items()
    }
    t0 = time.time()
    assert cli(ws, "launch", str(exp_file)) == 0
    assert time.time() - t0 < 15
    assert "0 trained, 0 failed, 4 skipped" in capsys.readouterr().out
    assert logs == {
        m: Workspace(ws).run_dir("e2e", r.run_id).file("worker.log").stat().st_mtime_ns
        for m, r in runs.items()
    }

    # query --json answers; report writes both files
    capsys.readouterr()
    assert (
        cli(
            ws,
            "query",
            "--json",
            "select method, count(*) as n from runs group by method order by method",
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [
        {"method": "base", "n": 1},
        {"method": "full", "n": 1},
        {"method": "lora", "n": 1},
        {"method": "prefix", "n": 1},
    ]
    out = tmp_path / "report"
    assert cli(ws, "report", "--experiment", "e2e", "--out", str(out)) == 0
    html = (out / "index.html").read_text()
    assert all(m in html for m in ("base", "full", "lora", "prefix")) and "<svg" in html

    # saved results round-trip: a fresh process rebuilds each model from its artefacts
    # and gets the recorded metrics again
    for method in ("full", "lora", "prefix"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "ftsweep.cli",
                "--workspace",
                str(ws),
                "evaluate",
                runs[method].run_id,
                "--json",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = json.loads(proc.stdout)
        assert out["now"]["exact_match"] == out["recorded"]["exact_match"], method
        assert abs(out["now"]["eval_loss"] - out["recorded"]["eval_loss"]) < 1e-4, method

    # export --merge writes a model that plain transformers loads
    merged = tmp_path / "merged"
    assert cli(ws, "export", runs["lora"].run_id[:8], "--merge", "--out", str(merged)) == 0
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged, use_safetensors=True)
    assert sum(p.numel() for p in model.parameters()) == full["total_params"]
    assert cli(ws, "export", runs["prefix"].run_id, "--merge", "--out", str(tmp_path / "x")) == 1

    # rebuilding the store from run directories gives the same tables
    tables = ("runs", "metrics", "evals", "eval_examples")
    before = {
        t: sorted(
            map(
                repr,
                query(
                    ws,
                    f"select * exclude (ingested_at) from {t}"
                    if t == "runs"
                    else f"select * from {t}",
                ),
            )
        )
        for t in tables
    }
    assert cli(ws, "ingest", "--rebuild") == 0
    after = {
        t: sorted(
            map(
                repr,
                query(
                    ws,
                    f"select * exclude (ingested_at) from {t}"
                    if t == "runs"
                    else f"select * from {t}",
                ),
            )
        )
        for t in tables
    }
    assert before == after


def test_ddp_two_processes_on_cpu(write_exp, tmp_path):
    ws = tmp_path / "ws"
    exp_file = write_exp(
        experiment_yaml(
            "ddp", matrix="matrix:\n  method: [full]\n", max_steps=4, launch="{num_processes: 2}"
        )
    )
    assert cli(ws, "launch", str(exp_file)) == 0
    (run,) = load_experiment(exp_file).runs
    rd = Workspace(ws).run_dir("ddp", run.run_id)
    result = json.loads(rd.file("result.json").read_text())
    assert result["world_size"] == 2 and result["steps"] == 4
    assert "--multi_gpu" in json.loads(rd.file("launch.json").read_text())["argv"]
    # one metrics log, written by rank 0 only: no step appears twice
    rows = [(r["step"], r["name"]) for r in read_jsonl(rd.file("metrics.jsonl"))]
    assert len(rows) == len(set(rows)) > 0


def test_failing_run_is_recorded_and_others_complete(write_exp, tmp_path, capsys):
    ws = tmp_path / "ws"
    exp_file = write_exp(
        experiment_yaml(
            "fail",
            matrix=textwrap.dedent("""\
        matrix:
          method:
            - base
            - {name: full, training.lr: [1.0e+30], training.max_grad_norm: [0.0]}
        """),
            max_steps=6,
        )
    )
    assert cli(ws, "launch", str(exp_file)) == 1
    rows = dict(query(ws, "select method, status from runs"))
    assert rows == {"base": "complete", "full": "failed"}
    ((cause, tail),) = query(
        ws, "select failure_cause, failure_log_tail from runs where method='full'"
    )
    assert "non-finite" in cause and tail
    # launching again retries nothing but still reports the sweep as incomplete
    assert cli(ws, "launch", str(exp_file)) == 1
    assert "failed earlier and were not retried" in capsys.readouterr().out
    cli(ws, "plan", "--json", str(exp_file))
    actions = {r["method"]: r["action"] for r in json.loads(capsys.readouterr().out)}
    assert actions == {"base": "skip", "full": "skip"}
    cli(ws, "plan", "--json", "--retry-failed", str(exp_file))
    actions = {r["method"]: r["action"] for r in json.loads(capsys.readouterr().out)}
    assert actions["full"] == "retry"


def _wait_for(pred, timeout: float, what: str, rd=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    log = rd.file("worker.log") if rd is not None else None
    detail = (
        f"; heartbeat {rd.heartbeat()}; log tail {log.read_text()[-1500:]!r}"
        if log is not None and log.exists()
        else ""
    )
    raise AssertionError(f"timed out waiting for {what}{detail}")


def test_killed_run_is_lost_then_resumed_without_duplicates(write_exp, tmp_path):
    ws = tmp_path / "ws"
    # One thread: two OpenMP threads on two shared cores crawl when anything else runs.
    # 300 steps: long enough that the kill lands mid-training even at ~17 steps/s.
    text = experiment_yaml(
        "kill",
        matrix="matrix:\n  method: [full]\n",
        max_steps=300,
        launch="{threads_per_process: 1}",
    )
    # eval_every: the early-stopping state (best eval) must survive the resume too
    text = text.replace(
        "logging_every: 2", "logging_every: 2\n  checkpoint_every: 20\n  eval_every: 20"
    )
    exp_file = write_exp(text)
    (run,) = load_experiment(exp_file).runs
    rd = Workspace(ws).run_dir("kill", run.run_id)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(exp_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        hb = _wait_for(
            lambda: (h := rd.heartbeat()) and h.get("step", 0) >= 25 and h,
            180,
            "the run to pass step 25",
            rd,
        )
        # readers work while the sweep holds the lock
        assert main(["--workspace", str(ws), "status", "--json"]) == 0
        assert query(ws, "select count(*) from runs")[0][0] >= 0
        # kill everything at once: launcher and the worker's process group
        os.killpg(launcher.pid, signal.SIGKILL)
        os.killpg(os.getpgid(int(hb["pid"])), signal.SIGKILL)
        assert not rd.file("result.json").exists(), "the run finished before the kill"
    finally:
        launcher.wait(timeout=30)
    time.sleep(0.5)
    (item,) = plan(load_experiment(exp_file), Workspace(ws))
    assert item.state == "lost" and item.action == Action.RELAUNCH
    assert cli(ws, "launch", str(exp_file)) == 0
    result = json.loads(rd.file("result.json").read_text())
    assert result["steps"] == 300
    evals = [r for r in read_jsonl(rd.file("metrics.jsonl")) if r["name"] == "eval_loss"]
    best = min(evals, key=lambda r: r["value"])
    assert result["best_step"] == best["step"]  # tracked across the kill
    assert result["best_eval"]["eval_loss"] == pytest.approx(best["value"])
    rows = [(r["step"], r["name"]) for r in read_jsonl(rd.file("metrics.jsonl"))]
    assert len(rows) == len(set(rows))
    losses = [s for s, n in rows if n == "loss"]
    assert losses == sorted(losses) and losses[-1] == 300
    assert "Resum" in rd.file("worker.log").read_text() or rd.file("attempt-0").is_dir()
    assert query(ws, "select status from runs") == [("complete",)]


def test_same_config_and_seed_give_the_same_metrics(write_exp, tmp_path):
    """Invariant 8: on one machine, a run's metrics depend only on its config and seed."""
    exp_file = write_exp(
        experiment_yaml("repro", matrix="matrix:\n  method: [{name: lora, r: 4}]\n", max_steps=6)
    )
    results, losses = [], []
    for ws in (tmp_path / "a", tmp_path / "b"):
        if ws.name == "b":  # the second run reads the first one's token cache
            entries = sorted((tmp_path / "a" / "cache" / "tokens").glob("*.json"))
            assert len(entries) == 2  # train and test
            shutil.copytree(tmp_path / "a" / "cache", ws / "cache")
            stamps = {p.name: p.stat().st_mtime_ns for p in (ws / "cache" / "tokens").iterdir()}
        assert cli(ws, "launch", str(exp_file)) == 0
        (run,) = load_experiment(exp_file).runs
        rd = Workspace(ws).run_dir("repro", run.run_id)
        results.append(json.loads(rd.file("result.json").read_text())["final_eval"])
        losses.append(
            [r["value"] for r in read_jsonl(rd.file("metrics.jsonl")) if r["name"] == "loss"]
        )
    assert results[0] == results[1]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    # read, not rebuilt (a rebuild replaces the file)
    assert {p.name: p.stat().st_mtime_ns for p in (ws / "cache" / "tokens").iterdir()} == stamps
