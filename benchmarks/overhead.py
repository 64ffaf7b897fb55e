"""Fixed cost per run and busy-slot fraction: cold `accelerate launch` vs the fork server.

    .venv/bin/python benchmarks/overhead.py [--experiment experiments/grid.yaml] [--workdir DIR]
    .venv/bin/python benchmarks/overhead.py --slurm    # also through a local Slurm (as root)

Trains the experiment twice, side by side in one invocation, into two fresh workspaces:
once with `launch.fork_server: false` (every run is a cold `accelerate launch`), once
with the fork server. For each run, the fixed cost is what the process group spends
outside its work: process wall (launcher's launch.json) − training loop − final
evaluation − save (result.json). Busy-slot fraction = sum of process walls / (slots ×
sweep wall). Prints medians per mode and checks that both modes give the same metrics.

``--slurm`` adds a third mode: the same runs as Slurm jobs on the two-node test cluster
of tests/slurm_cluster.py (started and stopped here), with as many jobs at once as the
local modes have slots, so Slurm's cost per run (sbatch, scheduling, the batch script,
polling) is measured against local runs on the same machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run_mode(exp_file: Path, workdir: Path, fork: bool, slurm: bool = False) -> dict:
    raw = yaml.safe_load(exp_file.read_text(encoding="utf-8"))
    raw.setdefault("launch", {})["fork_server"] = fork
    if slurm:
        raw["launch"]["executor"] = "slurm"
        raw["launch"]["slurm"] = {"poll_interval_s": 0.5, "time": "60"}
    for key in ("model",):
        raw[key]["path"] = str((exp_file.parent / raw[key]["path"]).resolve())
    for split in ("train", "eval", "test"):
        if raw["data"].get(split):
            raw["data"][split] = str((exp_file.parent / raw["data"][split]).resolve())
    mode = "slurm" if slurm else "fork" if fork else "cold"
    path = workdir / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    ws = workdir / mode
    t0 = time.time()
    subprocess.run(
        [sys.executable, "-m", "ftsweep.cli", "--workspace", str(ws), "launch", str(path)],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    wall = time.time() - t0
    runs = []
    for rd in sorted((ws / "runs").glob("*/*")):
        result = json.loads((rd / "result.json").read_text())
        launch = json.loads((rd / "launch.json").read_text())
        work = result["train_time_s"] + result["eval_time_s"] + result["save_time_s"]
        # A Slurm job's wall counts from submission: it includes queueing and scheduling.
        process = launch["process_wall_s"]
        runs.append(
            {
                "run": rd.name,
                "fixed_s": process - work,
                "process_wall_s": process,
                "final_eval": result["final_eval"],
            }
        )
    slots = int(raw["launch"].get("max_parallel") or 1)
    busy = sum(r["process_wall_s"] for r in runs) / (slots * wall)
    return {
        "mode": mode,
        "sweep_wall_s": wall,
        "slots": slots,
        "runs": runs,
        "fixed_median_s": statistics.median(r["fixed_s"] for r in runs),
        "busy": busy,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default=str(REPO / "experiments" / "grid.yaml"))
    p.add_argument("--workdir", default="/tmp/ftsweep-bench/overhead")
    p.add_argument(
        "--slurm",
        action="store_true",
        help="also run every run as a Slurm job on a local test cluster",
    )
    args = p.parse_args()
    workdir = Path(args.workdir)
    if workdir.exists():
        import shutil

        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    cold = run_mode(Path(args.experiment), workdir, fork=False)
    fork = run_mode(Path(args.experiment), workdir, fork=True)
    modes = [cold, fork]
    if args.slurm:
        sys.path.insert(0, str(REPO / "tests"))
        import os

        import slurm_cluster

        why = slurm_cluster.missing()
        if why:
            p.error(f"--slurm: {why}")
        cluster = slurm_cluster.start(workdir / "slurm-cluster")
        os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]
        try:
            modes.append(run_mode(Path(args.experiment), workdir, fork=False, slurm=True))
        finally:
            slurm_cluster.stop(cluster)
    metrics = [{r["run"]: r["final_eval"] for r in m["runs"]} for m in modes]
    same = all(m == metrics[0] for m in metrics)
    print(
        f"{'mode':6} {'runs':>4} {'fixed cost/run (median)':>24} {'busy slots':>10} "
        f"{'sweep wall':>10}"
    )
    for m in modes:
        print(
            f"{m['mode']:6} {len(m['runs']):>4} {m['fixed_median_s']:>22.2f} s "
            f"{100 * m['busy']:>9.1f}% {m['sweep_wall_s']:>9.1f}s"
        )
    print(
        f"fixed cost ratio fork/cold: {fork['fixed_median_s'] / cold['fixed_median_s']:.2f}; "
        f"same metrics in every mode: {same}"
    )
    if args.slurm:
        extra = modes[2]["fixed_median_s"] - cold["fixed_median_s"]
        print(f"Slurm's extra cost per run over a cold local run (median): {extra:.2f} s")
    (workdir / "overhead.json").write_text(
        json.dumps({**{m["mode"]: m for m in modes}, "same_metrics": same}, indent=2)
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
