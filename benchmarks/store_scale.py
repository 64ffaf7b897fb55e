"""The store at scale: generate a big workspace in ftsweep's run-directory format, time it.

    python benchmarks/store_scale.py                       # 1000 runs x 2000 steps x 8 metrics
    python benchmarks/store_scale.py --runs 100 --steps 200 --repeats 3
    python benchmarks/store_scale.py --only generate --workspace /tmp/ws   # just the data

The workspace is written exactly as workers and the launcher write it (spec.json,
provenance.json, metrics.jsonl via the same JSON encoding as ``JsonlAppender``,
evals.jsonl, heartbeat.json, result.json or failure.json, launch.json), deterministic
for a given size: the same arguments give the same bytes (timestamps are fixed too).
Some runs carry what real sweeps leave behind: failed runs whose last metrics line was
torn by a kill, runs resumed without trimming (re-logged steps: the last value wins),
and a NaN. ``tests/test_store_scale.py`` uses ``generate`` at a small size.

Each operation of the table runs as its own ``ftsweep`` process (what a user waits
for, imports included); its peak RSS is that process's (from wait4). Timings are the
median of ``--repeats`` where an operation can be repeated without changing the
workspace; the others run once.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METRIC_NAMES = (
    "loss",
    "grad_norm",
    "lr",
    "tokens_per_s",
    "eval_loss",
    "eval_exact_match",
    "eval_token_f1",
    "eval_accuracy",
)
METHODS = ("full", "lora", "prefix", "dora")
T0 = 1_767_225_600.0  # 2026-01-01, so the bytes do not depend on the clock


@dataclass(frozen=True)
class Size:
    runs: int = 1000
    steps: int = 2000
    metrics: int = 8
    examples: int = 200
    experiments: int = 10
    fail_every: int = 50  # every 50th run failed (a kill tore its last metrics line)
    resume_every: int = 37  # every 37th run re-logged its last 10 steps after a resume

    @property
    def metric_names(self) -> tuple[str, ...]:
        extra = tuple(f"m{i}" for i in range(max(0, self.metrics - len(METRIC_NAMES))))
        return (METRIC_NAMES + extra)[: self.metrics]


def _dump(path: Path, data: Any) -> None:
    # The bytes rundir.atomic_write_json writes (indent=2, sorted keys).
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def run_id_of(experiment: str, index: int) -> str:
    return hashlib.sha256(f"{experiment}/{index}".encode()).hexdigest()[:12]


def _config(method: str, lr: float, seed: int) -> dict[str, Any]:
    """A resolved config of realistic size (~1.4 kB, like the demo's)."""
    return {
        "data": {
            "clean": {
                "drop_duplicates": False,
                "drop_empty": True,
                "max_chars": None,
                "normalize_whitespace": False,
                "strip_control": True,
            },
            "completion_only_loss": True,
            "eval": "data/eval.jsonl",
            "family": "instruction",
            "max_length": 64,
            "on_bad_record": "error",
            "packing": False,
            "split_seed": 0,
            "template": "auto",
            "test": "data/test.jsonl",
            "train": "data/train.jsonl",
        },
        "eval": {
            "batch_size": 64,
            "evaluators": ["loss", "exact_match", "token_f1"],
            "max_new_tokens": 8,
            "primary_metric": "exact_match",
            "split": "test",
        },
        "method": {
            "name": method,
            **({"r": 16, "alpha": 32} if method in ("lora", "dora") else {}),
        },
        "model": {"allow_pickle": False, "path": "models/tiny-base", "trust_remote_code": False},
        "num_processes": 1,
        "seed": seed,
        "training": {
            "batch_size": 16,
            "eval_every": 50,
            "grad_accum": 1,
            "logging_every": 1,
            "lr": lr,
            "max_grad_norm": 1.0,
            "max_steps": 2000,
            "optimizer": "adamw",
            "precision": "fp32",
            "scheduler": "linear",
            "warmup_ratio": 0.1,
        },
    }


def _metrics_text(rng: random.Random, size: Size, first: int, last: int, t: float) -> str:
    names = size.metric_names
    lines = []
    for step in range(first, last + 1):
        epoch = step / size.steps
        for name in names:
            value = rng.random() * 2.0 / (1 + step / 100)
            # JsonlAppender: json.dumps(record, sort_keys=True); floats print as repr.
            lines.append(
                f'{{"epoch": {epoch!r}, "name": "{name}", "step": {step}, '
                f'"time": {t + step * 0.5!r}, "value": {value!r}}}\n'
            )
    return "".join(lines)


def write_run(root: Path, size: Size, experiment: str, index: int) -> Path:
    """One run directory as a finished worker (and its launcher) leave it."""
    run_id = run_id_of(experiment, index)
    rng = random.Random(f"{experiment}/{index}")
    method, seed = METHODS[index % len(METHODS)], index % 3
    lr = (1e-4, 3e-4, 1e-3, 3e-3)[(index // len(METHODS)) % 4]
    rd = root / "runs" / experiment / run_id
    rd.mkdir(parents=True, exist_ok=True)
    created = T0 + index * 60
    _dump(
        rd / "spec.json",
        {
            "run_id": run_id,
            "experiment": experiment,
            "method": method,
            "seed": seed,
            "params": {"training.lr": lr},
            "config": _config(method, lr, seed),
            "paths": {"model": "/models/tiny-base", "data.train": "/data/train.jsonl"},
            "fingerprints": {"model": "sha256:" + "a" * 32, "data.train": "sha256:" + "b" * 32},
            "created_at": created,
        },
    )
    failed = index % size.fail_every == size.fail_every - 1
    with open(rd / "metrics.jsonl", "w", encoding="utf-8") as fh:
        last = size.steps // 2 if failed else size.steps
        fh.write(_metrics_text(rng, size, 1, last, created))
        if index % size.resume_every == size.resume_every - 1 and last > 10:
            fh.write(_metrics_text(rng, size, last - 9, last, created + 1))  # re-logged
        if failed:
            fh.write('{"epoch": 0.5, "name": "loss", "st')  # killed mid-record
        elif index == 0:
            fh.write(
                f'{{"epoch": 1.0, "name": "loss", "step": {size.steps + 1}, '
                f'"time": {created!r}, "value": NaN}}\n'
            )
    finished = created + 0.5 * size.steps
    _dump(
        rd / "heartbeat.json",
        {
            "time": finished,
            "pid": 1000 + index,
            "host": "bench",
            "step": size.steps,
            "max_steps": size.steps,
            "loss": 0.1,
            "eta_s": 0.0,
            "phase": "evaluate",
        },
    )
    _dump(
        rd / "launch.json",
        {
            "submitted_at": created,
            "exited_at": finished + 5,
            "returncode": 1 if failed else 0,
            "process_wall_s": finished + 5 - created,
            "argv": ["accelerate"],
        },
    )
    if failed:
        _dump(
            rd / "failure.json",
            {
                "cause": "RuntimeError: CUDA out of memory",
                "log_tail": "Traceback ...\nOOM",
                "time": finished,
                "pruned": False,
            },
        )
        return rd
    _dump(
        rd / "provenance.json",
        {
            "versions": {"torch": "2.13.0", "ftsweep": "0.1.0"},
            "git": {"commit": "0" * 40, "dirty": False},
            "host": "bench",
        },
    )
    scores = [float(rng.random() < 0.6) for _ in range(size.examples)]
    with open(rd / "evals.jsonl", "w", encoding="utf-8") as fh:
        for i, s in enumerate(scores):
            fh.write(
                json.dumps(
                    {
                        "split": "test",
                        "example_id": f"ex{i:05d}",
                        "metric": "exact_match",
                        "value": s,
                        "prediction": f"answer {i % 17}",
                        "reference": f"answer {i % 13}",
                    },
                    sort_keys=True,
                )
                + "\n"
            )
    acc = sum(scores) / max(1, len(scores))
    _dump(
        rd / "result.json",
        {
            "status": "complete",
            "started_at": created + 1,
            "finished_at": finished,
            "trainable_params": 1000,
            "total_params": 100000,
            "trainable_pct": 1.0,
            "peak_memory_mb": 512.0,
            "wall_time_s": finished - created,
            "train_time_s": 0.4 * size.steps,
            "tokens_seen": 5000 * size.steps,
            "tokens_per_s": 12500.0,
            "steps": size.steps,
            "artifact_size_mb": 1.5,
            "eval_split": "test",
            "final_eval": {"exact_match": acc, "eval_loss": 1 - acc},
            "best_eval": {"exact_match": acc},
            "best_step": size.steps,
        },
    )
    return rd


def experiment_name(size: Size, index: int) -> str:
    return f"scale-{index % size.experiments:02d}"


def _write_one(args: tuple[Path, Size, int]) -> Path:
    root, size, i = args
    return write_run(root, size, experiment_name(size, i), i)


def generate(root: Path, size: Size, start: int = 0, jobs: int = 1) -> list[Path]:
    """Write runs ``start`` .. ``size.runs - 1`` (spread over ``size.experiments``)."""
    todo = [(root, size, i) for i in range(start, size.runs)]
    if jobs <= 1:
        return [_write_one(t) for t in todo]
    with multiprocessing.Pool(jobs) as pool:  # the same bytes, in any order
        return pool.map(_write_one, todo, chunksize=8)


def plan_yaml(folder: Path, runs: int) -> Path:
    """The demo grid turned into a LoRA matrix of ``runs`` runs (r x lr x 10 seeds)."""
    points = max(1, runs // 10)
    rs = min(points, 50)
    lrs = -(-points // rs)
    text = (ROOT / "experiments" / "grid.yaml").read_text(encoding="utf-8")
    text = text.replace("../models", str(ROOT / "models")).replace("../data", str(ROOT / "data"))
    head, _, rest = text.partition("matrix:")
    _, _, tail = rest.partition("seeds:")
    tail = tail.split("\n", 1)[1]
    matrix = (
        "matrix:\n  method:\n    - {name: lora, alpha: 32, target_modules: all-linear, "
        f"r: [{', '.join(str(r + 1) for r in range(rs))}], "
        f"training.lr: [{', '.join(f'{1e-4 * (1 + i / 100):.6g}' for i in range(lrs))}]}}\n"
        f"seeds: [{', '.join(str(s) for s in range(10))}]\n"
    )
    path = folder / f"plan-{runs}.yaml"
    path.write_text(head + matrix + tail, encoding="utf-8")
    return path


# -- measuring ------------------------------------------------------------------------------


# Peak RSS comes from wait4, but a child forked from a big process starts with that
# process's pages counted (and the mark survives exec), so commands are started by this
# small helper, launched before the benchmark imports anything heavy.
_SPAWNER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    cmd = json.loads(line)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "COLUMNS": "200"})
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    print(json.dumps([time.perf_counter() - t0, usage.ru_maxrss / 1024,
                      os.waitstatus_to_exitcode(status), out,
                      usage.ru_utime + usage.ru_stime]), flush=True)
"""
_spawner: subprocess.Popen[str] | None = None


def _run(cmd: list[str]) -> tuple[float, float, int, str, float]:
    global _spawner
    if _spawner is None:
        _spawner = subprocess.Popen(
            [sys.executable, "-c", _SPAWNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    assert _spawner.stdin is not None and _spawner.stdout is not None
    _spawner.stdin.write(json.dumps(cmd) + "\n")
    _spawner.stdin.flush()
    wall, rss, rc, out, cpu = json.loads(_spawner.stdout.readline())
    return wall, rss, rc, out, cpu


@dataclass
class Timing:
    wall: float  # s, what the user waits
    cpu: float  # s, user + system of the process and its threads
    rss: float | None = None  # MB, peak


def _ftsweep(ws: Path, *args: str) -> tuple[Timing, str]:
    """Run one ``ftsweep`` command; return its timing and output."""
    wall, rss, rc, out, cpu = _run(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), *args]
    )
    if rc != 0:
        raise SystemExit(f"`{' '.join(args)}` failed:\n{out}")
    return Timing(wall, cpu, rss), out


def _timed(fn: Callable[[], tuple[Timing, str]], repeats: int) -> Timing:
    """The median of ``repeats`` runs (wall and CPU each), the highest peak RSS."""
    results = [fn()[0] for _ in range(repeats)]
    rss = [r.rss for r in results if r.rss is not None]
    return Timing(
        statistics.median(r.wall for r in results),
        statistics.median(r.cpu for r in results),
        max(rss) if rss else None,
    )


def _launcher_step(ws: Path, new_run: Callable[[], Path], repeats: int) -> Timing:
    """What the launcher does after each finished run: ingest it, publish a snapshot.

    In this process, as in the launcher (which holds the lock and the store open for
    the whole sweep); the first of ``repeats + 1`` steps opens the store and is not
    counted.
    """
    sys.path.insert(0, str(ROOT))
    from ftsweep.rundir import RunDir
    from ftsweep.store import Store
    from ftsweep.workspace import Workspace

    workspace = Workspace(ws)
    walls, cpus = [], []
    with workspace.lock():
        for _ in range(repeats + 1):
            rd = RunDir(new_run())
            t0, c0 = time.perf_counter(), time.process_time()
            with Store.writer(workspace) as store:
                store.ingest_runs([rd])
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return Timing(statistics.median(walls[1:]), statistics.median(cpus[1:]))


def measure(ws: Path, size: Size, repeats: int, plan_runs: int = 0) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []

    def row(op: str, t: Timing, target: str) -> None:
        mem = f", peak {t.rss:,.0f} MB" if t.rss is not None else ""
        rows.append((op, f"{t.wall:.2f} s (CPU {t.cpu:.2f} s{mem})", target))
        print(f"  {op}: {rows[-1][1]}  [load {os.getloadavg()[0]:.1f}]", flush=True)

    t, out = _ftsweep(ws, "ingest", "--rebuild")
    print("   ", out.strip().splitlines()[-1][:300])
    row("`ftsweep ingest --rebuild`", t, "≤ 15 s, ≤ 2 GB")
    row(
        '`ftsweep query "select count(*) from metrics"` (settled)',
        _timed(lambda: _ftsweep(ws, "query", "select count(*) from metrics"), repeats),
        "≤ 1 s",
    )
    runs_per_exp = -(-size.runs // size.experiments)
    row(
        f"`ftsweep report --experiment {experiment_name(size, 0)}` ({runs_per_exp} runs)",
        _timed(
            lambda: _ftsweep(
                ws,
                "report",
                "--experiment",
                experiment_name(size, 0),
                "--out",
                str(ws.parent / "report"),
            ),
            repeats,
        ),
        "≤ 3 s",
    )
    more = dataclasses.replace(size, runs=size.runs + 10)
    generate(ws, more, start=size.runs)
    row("`ftsweep ingest` after 10 new runs", _ftsweep(ws, "ingest")[0], "≤ 2 s")
    counter = iter(range(more.runs, more.runs + 1000))
    row(
        "launcher: ingest a finished run + publish the snapshot (in process, store open)",
        _launcher_step(ws, lambda: write_run(ws, size, "scale-launch", next(counter)), repeats),
        "≤ 0.2 s",
    )
    row(
        f"`ftsweep status` ({more.runs + repeats + 1} runs)",
        _timed(lambda: _ftsweep(ws, "status"), repeats),
        "≤ 0.3 s",
    )
    row(
        '`ftsweep query "select 1"`',
        _timed(lambda: _ftsweep(ws, "query", "select 1"), repeats),
        "≤ 0.3 s",
    )
    if plan_runs:
        big = plan_yaml(ws.parent, plan_runs)
        t, out = _ftsweep(
            ws.parent / "plan-ws", "plan", str(big), "--json", "--max-runs", str(plan_runs)
        )
        assert out.count('"run_id"') == plan_runs, out[-500:]
        row(f"`ftsweep plan --json` of a {plan_runs:,}-run matrix", t, "≤ 5 s")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=Size.runs)
    p.add_argument("--steps", type=int, default=Size.steps)
    p.add_argument("--metrics", type=int, default=Size.metrics)
    p.add_argument("--examples", type=int, default=Size.examples)
    p.add_argument("--experiments", type=int, default=Size.experiments)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1, help="processes that generate the workspace")
    p.add_argument(
        "--plan-runs",
        type=int,
        default=100_000,
        help="also time `ftsweep plan` of a matrix this big (0: skip)",
    )
    p.add_argument("--workspace", help="where to generate (default: a temporary directory)")
    p.add_argument("--only", choices=("generate",), help="generate the workspace and stop")
    args = p.parse_args(argv)
    size = Size(args.runs, args.steps, args.metrics, args.examples, args.experiments)
    _run([sys.executable, "-c", "pass"])  # start the spawner while this process is small
    tmp = None if args.workspace else Path(tempfile.mkdtemp(prefix="ftsweep-scale-"))
    ws = Path(args.workspace) if args.workspace else tmp / "ws"  # type: ignore[operator]
    try:
        t0 = time.perf_counter()
        if not (ws / "runs").exists():
            generate(ws, size, jobs=args.jobs)
        print(f"workspace {ws}: {size} ready in {time.perf_counter() - t0:.1f} s", flush=True)
        if args.only == "generate":
            return 0
        rows = measure(ws, size, args.repeats, args.plan_runs)
        print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()}")
        print("\n| operation | now | target |\n|---|---|---|")
        for op, now, target in rows:
            print(f"| {op} | {now} | {target} |")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
