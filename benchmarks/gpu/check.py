"""Every GPU option of ftsweep, run through `ftsweep launch`, in one table.

    bash benchmarks/gpu/check.sh [WHEELHOUSE]      # installs the wheels, then runs this
    python benchmarks/gpu/check.py --out DIR         # in an environment that has them

On one GPU (219 s on an H200, three files at a time): QLoRA 4- and 8-bit, LoRA in bf16
with gradient checkpointing and in fp16, full fine-tuning with 8-bit AdamW, DeepSpeed
ZeRO-2 and ZeRO-3 with and without CPU offload, FSDP2 with full fine-tuning and LoRA. With two GPUs or
more, also DDP, FSDP and ZeRO-3 across two of them. Then every completed run is rebuilt
from its saved artefacts and evaluated again: its metrics must be bit-identical.

Prints one table (status, peak memory, train time, tokens/s, exact match, reload) and
writes it as gpu-check.md and gpu-check.json under --out. On a machine without CUDA
nothing trains: each file is validated, its reasons are listed, and the exit code is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Longest first; the offload files early, as DeepSpeed compiles its CPU Adam op then.
ONE_GPU = [
    "precision.yaml",
    "fsdp.yaml",
    "zero2.yaml",
    "gpu.yaml",
    "zero3-offload.yaml",
    "zero3.yaml",
    "zero2-nooffload.yaml",
]
# name → (source file, launch block): the same runs spread over two GPUs.
TWO_GPUS = {
    "ddp-2gpu": ("fsdp.yaml", {"num_processes": 2}),
    "fsdp-2gpu": ("fsdp.yaml", {"num_processes": 2, "distributed": {"strategy": "fsdp"}}),
    "zero3-2gpu": (
        "zero3.yaml",
        {"num_processes": 2, "distributed": {"strategy": "deepspeed", "zero_stage": 3}},
    ),
}
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "bitsandbytes",
    "deepspeed",
    "duckdb",
    "optuna",
    "pydantic",
)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def device() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"cuda": False, "count": 0, "name": platform.processor() or "cpu"}
    props = torch.cuda.get_device_properties(0)
    return {
        "cuda": True,
        "count": torch.cuda.device_count(),
        "name": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch_cuda": torch.version.cuda,
        "capability": list(torch.cuda.get_device_capability(0)),
    }


def two_gpu_file(name: str, src: str, launch: dict[str, Any], ws: Path) -> Path:
    """A copy of ``src`` with another launch block and absolute paths, for two GPUs."""
    data = yaml.safe_load((HERE / src).read_text())
    data["experiment"] = f"gpu-{name}"
    data["model"]["path"] = str((HERE / data["model"]["path"]).resolve())
    for split in ("train", "eval", "test"):
        if split in data["data"]:
            data["data"][split] = str((HERE / data["data"][split]).resolve())
    data["launch"] = launch
    out = ws / "two-gpu" / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


GRACE_S = 30  # a launch still running this long after the budget is stopped


def launch_all(
    jobs: list[tuple[str, Path, Path]], parallel: int, deadline: float
) -> dict[str, str]:
    """`ftsweep launch` each (label, file, workspace), ``parallel`` at a time.

    Each file has its own workspace, so launches do not wait for each other's lock. None
    starts after ``deadline``; one still running ``GRACE_S`` later is stopped the way a
    user would (SIGTERM): the launcher stops and records its runs, where SIGKILL would
    leave workers on the GPU beside the next runs.
    """
    pending, running, how = list(jobs), {}, {}
    while pending or running:
        while pending and len(running) < parallel and time.time() < deadline:
            name, path, ws = pending.pop(0)
            ws.mkdir(parents=True, exist_ok=True)
            log = open(ws / "launch.log", "w")  # closed when the launch ends
            cmd = [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(path)]
            running[name] = (
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO),
                time.time(),
                log,
                ws,
            )
        if time.time() >= deadline:
            how.update({name: "skipped: over the budget" for name, _, _ in pending})
            pending = []
        for name, (proc, t0, log, ws) in list(running.items()):
            if proc.poll() is None and time.time() > deadline + GRACE_S:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                how[name] = "stopped: over the budget"
            elif proc.poll() is not None:
                how[name] = f"exit {proc.returncode}"
            else:
                continue
            log.close()
            print(f"{name}: launch {how[name]} after {time.time() - t0:.0f} s", flush=True)
            if proc.returncode == 2:  # bad input: say why
                print((ws / "launch.log").read_text()[-3000:], flush=True)
            del running[name]
        time.sleep(0.5)
    return how


def label(spec: dict[str, Any]) -> str:
    """What a row ran: method, its distinguishing params, precision, optimizer, launch."""
    cfg = spec["config"]
    t = cfg["training"]
    parts = [spec["method"]]
    if "bits" in cfg["method"]:
        parts.append(f"{cfg['method']['bits']}-bit")
    parts.append(t["precision"])
    if t.get("gradient_checkpointing") or cfg["method"].get("gradient_checkpointing"):
        parts.append("grad ckpt")
    if t["optimizer"] != "adamw":
        parts.append(t["optimizer"])
    return ", ".join(parts)


def runs_of(ws: Path, experiment: str) -> list[tuple[Path, dict[str, Any]]]:
    root = ws / "runs" / experiment
    out = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if (d / "spec.json").is_file():
            out.append((d, json.loads((d / "spec.json").read_text())))
    return out


def row_for(file: str, run_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    result = run_dir / "result.json"
    failure = run_dir / "failure.json"
    row: dict[str, Any] = {"file": file, "run": label(spec), "run_id": spec["run_id"]}
    if result.is_file():
        r = json.loads(result.read_text())
        row.update(
            status="complete",
            peak_memory_mb=r["peak_memory_mb"],
            train_time_s=r["train_time_s"],
            tokens_per_s=r["tokens_per_s"],
            exact_match=r["final_eval"].get("exact_match"),
            steps=r["steps"],
        )
    elif failure.is_file():
        f = json.loads(failure.read_text())
        row.update(
            status="failed",
            note=str(f.get("cause", ""))[:300],
            log_tail=str(f.get("log_tail", ""))[-3000:],
        )
    else:  # stopped at the budget, or never started
        row.update(status="unfinished" if (run_dir / "worker.log").exists() else "not run")
    return row


def reload_check(run_dir: Path) -> str:
    """Rebuild the run from its artefacts and evaluate again: identical metrics or why not."""
    from ftsweep.reevaluate import reevaluate

    try:
        r = reevaluate(run_dir)
    except Exception as exc:  # a row of the table, not the end of the check
        return f"error: {type(exc).__name__}: {exc}"[:200]
    differ = {k: (v, r["now"].get(k)) for k, v in r["recorded"].items() if r["now"].get(k) != v}
    return "identical" if not differ else f"differs: {differ}"


def table(rows: list[dict[str, Any]]) -> str:
    def num(v: Any, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, int | float) else "—"

    lines = [
        "| file | run | status | peak memory MiB | train s | tokens/s | exact match | reload |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        status = r["status"] if not r.get("note") else f"{r['status']}: {r['note'][:120]}"
        lines.append(
            f"| {r['file']} | {r['run']} | {status} | {num(r.get('peak_memory_mb'), ',.0f')} "
            f"| {num(r.get('train_time_s'), '.1f')} | {num(r.get('tokens_per_s'), ',.0f')} "
            f"| {num(r.get('exact_match'), '.3f')} | {r.get('reload', '—')} |"
        )
    return "\n".join(lines)


def rejected(files: list[Path]) -> list[dict[str, Any]]:
    """Without CUDA: each file's validation errors, which must name every GPU option."""
    from ftsweep.config.load import load_experiment
    from ftsweep.errors import ConfigError

    rows = []
    for f in files:
        try:
            load_experiment(f)
            rows.append({"file": f.name, "run": "(validation)", "status": "accepted"})
        except ConfigError as exc:
            rows.append(
                {
                    "file": f.name,
                    "run": "(validation)",
                    "status": "rejected",
                    "problems": [p.format() for p in exc.problems],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=Path("/tmp/ftsweep-gpu-check"))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    ap.add_argument(
        "--budget-s",
        type=float,
        default=290.0,
        help="stop launching new files after this many seconds",
    )
    ap.add_argument("--only", nargs="+", metavar="FILE", help="run these files of the bundle")
    ap.add_argument(
        "--parallel",
        type=int,
        default=3,
        help="one-GPU files launched at once (1: timings free of contention)",
    )
    a = ap.parse_args(argv)
    started = time.time()
    a.out.mkdir(parents=True, exist_ok=True)
    dev, vers = device(), versions()
    print(json.dumps({"device": dev, "versions": vers}), flush=True)
    chosen = [f for f in ONE_GPU if not a.only or f in a.only]
    files, paths = list(chosen), [HERE / f for f in chosen]
    if dev["count"] >= 2 and not a.only:
        for name, (src, launch) in TWO_GPUS.items():
            paths.append(two_gpu_file(name, src, launch, a.workspace))
            files.append(f"{name} ({src})")
    if not dev["cuda"]:
        rows = rejected(paths)
        code = 2
    else:
        rows, code = [], 0
        spaces = {f: a.workspace / Path(str(p)).stem for f, p in zip(files, paths, strict=True)}
        one = [(f, p, spaces[f]) for f, p in zip(files, paths, strict=True) if f in ONE_GPU]
        two = [(f, p, spaces[f]) for f, p in zip(files, paths, strict=True) if f not in ONE_GPU]
        deadline = started + a.budget_s
        how = launch_all(one, a.parallel, deadline)
        how.update(launch_all(two, 1, deadline))  # each needs both GPUs to itself
        for file, path in zip(files, paths, strict=True):
            experiment = yaml.safe_load(path.read_text())["experiment"]
            found = runs_of(spaces[file], experiment)
            rows += [row_for(file, d, s) for d, s in found] or [
                {"file": file, "run": "(all)", "status": how.get(file, "not run")}
            ]
        dirs = {s["run_id"]: d for ws in spaces.values() for d, s in runs_of_all(ws)}
        for row in rows:  # FSDP rows always; the others while the budget (+90 s) lasts
            if row["status"] != "complete":
                continue
            if "fsdp" in row["file"] or time.time() - started < a.budget_s + 90:
                row["reload"] = reload_check(dirs[row["run_id"]])
            else:
                row["reload"] = "not checked: over the budget"
        ok = all(r["status"] == "complete" and r.get("reload") == "identical" for r in rows)
        code = 0 if ok else 1
    text = table(rows)
    for r in rows:  # on CPU: why each file cannot run here
        text += "".join(f"\n{r['file']}: {p}" for p in r.get("problems", []))
    print(text)
    if dev["count"] == 1:
        print("one GPU: DDP / FSDP / ZeRO across GPUs were not run")
    print(f"total {time.time() - started:.0f} s")
    (a.out / "gpu-check.md").write_text(
        f"device: {json.dumps(dev)}\nversions: {json.dumps(vers)}\n\n{text}\n"
    )
    (a.out / "gpu-check.json").write_text(
        json.dumps(
            {"device": dev, "versions": vers, "rows": rows, "seconds": time.time() - started},
            indent=1,
        )
    )
    return code


def runs_of_all(ws: Path) -> list[tuple[Path, dict[str, Any]]]:
    root = ws / "runs"
    exps = sorted(root.iterdir()) if root.is_dir() else []
    return [r for e in exps if e.is_dir() for r in runs_of(ws, e.name)]


if __name__ == "__main__":
    sys.exit(main())
