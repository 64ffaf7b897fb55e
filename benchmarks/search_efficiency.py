"""Search efficiency: Optuna search with pruning against a dense reference grid (issue 7).

    python benchmarks/search_efficiency.py                # shipped grid data + 3 searches
    python benchmarks/search_efficiency.py --no-reuse-grid   # train the grid again first
    python benchmarks/search_efficiency.py --grid-only --no-reuse-grid   # only the grid

The grid is derived from experiments/search.yaml, over the same space: every method's
``training.lr`` range log-spaced (8 points for a method with no other searched
parameter, else 6; rounded to 3 significant digits) times every value of its
``{choices: [...]}`` parameters; model, data, training, eval, seeds and fixed values
are the file's own. It is written as a matrix experiment (``search-grid``) into the
work dir and trained with the real CLI (``ftsweep --workspace <ws> launch <file>``).
Its outcome is shipped as ``benchmarks/data/search_grid.json`` (per run: method,
params, exact match, steps; totals, package versions, machine, command), so later
invocations reuse it (``--reuse-grid``, the default when that file exists).

Then, for each search seed (0, 1, 2), search.yaml is copied with ``search.seed`` set
(experiment ``search-s<seed>``, its own workspace) and launched. Per search:

    steps      training steps actually spent: complete runs' result.json ``steps``,
               pruned runs' failure.json ``steps`` (else ``step``, where they stopped)
    best EM    the best final exact match among complete trials (result.json final_eval)
    pruned     trials stopped by the pruner

Target: the median seed reaches within 0.01 exact match of the grid's best with at
most 30% of the grid's training steps (median over the seeds of steps and of best EM).
The table is printed and written to ``benchmarks/data/search_efficiency.json``.
Relaunching resumes: a workspace that already holds a finished search is only read.

By default ftsweep runs from a ``git archive HEAD`` copy of the repository in the work
dir (``--no-snapshot``: from the working tree), so uncommitted edits others make to a
shared checkout during the hour this takes cannot change, or break, the measurement;
the commit is recorded with the data.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "benchmarks" / "data"
GRID_JSON = "search_grid.json"
TABLE_JSON = "search_efficiency.json"
GRID_EXPERIMENT = "search-grid"
TARGET_STEPS_FRACTION = 0.30
TARGET_EM_GAP = 0.01
PATH_KEYS = (("model", "path"), ("data", "train"), ("data", "eval"), ("data", "test"))


# -- the grid, derived from the search file ---------------------------------------------


def round_sig(x: float, sig: int = 3) -> float:
    return float(f"{x:.{sig}g}")


def log_points(low: float, high: float, n: int) -> list[float]:
    """n log-spaced values from low to high inclusive, rounded to 3 significant digits
    (an end that rounding would push outside the range stays as it is)."""
    if n == 1:
        return [round_sig(math.sqrt(low * high))]
    step = (math.log(high) - math.log(low)) / (n - 1)
    points = [round_sig(math.exp(math.log(low) + i * step)) for i in range(n)]
    return [min(max(x, low), high) for x in points]


def _is_dist(v: Any) -> bool:
    return isinstance(v, dict) and bool({"float", "int", "choices"} & set(v))


def absolutize(cfg: dict[str, Any], base: Path) -> dict[str, Any]:
    """The file's relative model and data paths made absolute (the copy lives elsewhere)."""
    cfg = copy.deepcopy(cfg)
    for block, key in PATH_KEYS:
        value = (cfg.get(block) or {}).get(key)
        if (
            isinstance(value, str)
            and not Path(value).is_absolute()
            and (value.startswith(".") or (base / value).exists())
        ):
            cfg[block][key] = str((base / value).resolve())
    return cfg


def derive_grid(
    search_cfg: dict[str, Any], base: Path, lr_points: dict[str, int] | None = None
) -> dict[str, Any]:
    """A matrix experiment over the search file's space (see the module docstring)."""
    space = search_cfg["search"]["space"]
    shared = {k: v for k, v in space.items() if k != "method"}
    if any(_is_dist(v) for v in shared.values()):
        raise ValueError("a searched parameter shared by every method has no grid rule here")
    methods = []
    for entry in space["method"]:
        name = entry["name"]
        own = {**shared, **{k: v for k, v in entry.items() if k not in ("name", "pruner")}}
        searched = [k for k, v in own.items() if _is_dist(v) and k != "training.lr"]
        point: dict[str, Any] = {"name": name}
        for key, value in own.items():
            if key == "training.lr":
                low, high = value["float"]
                n = (lr_points or {}).get(name, 6 if searched else 8)
                point[key] = log_points(float(low), float(high), n)
            elif _is_dist(value):
                if "choices" not in value:
                    raise ValueError(
                        f"{name}.{key}: only choices (and training.lr) have a grid rule"
                    )
                point[key] = list(value["choices"])
            else:
                point[key] = value
        methods.append(point)
    grid = {k: copy.deepcopy(v) for k, v in search_cfg.items() if k != "search"}
    grid["experiment"] = GRID_EXPERIMENT
    grid["description"] = f"dense reference grid over {search_cfg['experiment']}'s space"
    grid["matrix"] = {"method": methods}
    grid["launch"] = {**(grid.get("launch") or {}), "max_parallel": 2}
    return absolutize(grid, base)


def grid_points(grid: dict[str, Any]) -> dict[str, int]:
    """Runs per method of a derived grid (product of its list-valued keys) times seeds."""
    seeds = len(grid.get("seeds") or [0])
    counts = {}
    for entry in grid["matrix"]["method"]:
        n = 1
        for key, value in entry.items():
            if key != "name" and isinstance(value, list):
                n *= len(value)
        counts[entry["name"]] = n * seeds
    return counts


def search_variant(search_cfg: dict[str, Any], base: Path, seed: int) -> dict[str, Any]:
    cfg = absolutize(search_cfg, base)
    cfg["experiment"] = f"{search_cfg['experiment']}-s{seed}"
    cfg["search"]["seed"] = seed
    return cfg


# -- reading a workspace ------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect_runs(workspace: Path, experiment: str) -> list[dict[str, Any]]:
    """Every run directory of an experiment: method, params, state, exact match, steps."""
    runs = []
    root = workspace / "runs" / experiment
    for rd in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        spec = _read_json(rd / "spec.json")
        if spec is None:
            continue
        result, failure = _read_json(rd / "result.json"), _read_json(rd / "failure.json")
        row: dict[str, Any] = {
            "run_id": spec.get("run_id", rd.name),
            "method": spec["method"],
            "params": spec.get("params", {}),
            "seed": spec.get("seed"),
            "trial": (spec.get("trial") or {}).get("number"),
            "exact_match": None,
            "steps": 0,
        }
        if result is not None:
            row["state"] = "complete"
            row["exact_match"] = (result.get("final_eval") or {}).get("exact_match")
            row["steps"] = int(result.get("steps") or 0)
        elif failure is not None:
            row["state"] = "pruned" if failure.get("pruned") else "failed"
            steps = failure.get("steps", failure.get("step"))
            if steps is None:  # a failed run: where its heartbeat last was
                steps = (_read_json(rd / "heartbeat.json") or {}).get("step", 0)
            row["steps"] = int(steps or 0)
        else:
            row["state"] = "unfinished"
            row["steps"] = int((_read_json(rd / "heartbeat.json") or {}).get("step") or 0)
        runs.append(row)
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps spent, best exact match among complete runs (and which), states counted."""
    done = [r for r in runs if r["state"] == "complete" and r["exact_match"] is not None]
    best = max(done, key=lambda r: r["exact_match"], default=None)
    states = {
        s: sum(r["state"] == s for r in runs)
        for s in ("complete", "pruned", "failed", "unfinished")
    }
    return {
        "runs": len(runs),
        "steps": sum(r["steps"] for r in runs),
        "best_exact_match": best["exact_match"] if best else None,
        "best": {k: best[k] for k in ("method", "params", "run_id")} if best else None,
        **states,
    }


def compare(grid: dict[str, Any], searches: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Each search against the grid, their median, and whether the target is met."""
    g_steps, g_best = grid["steps"], grid["best_exact_match"]
    rows = []
    for seed, s in sorted(searches.items()):
        em = s["best_exact_match"]
        rows.append(
            {
                "seed": seed,
                "steps": s["steps"],
                "pct_grid_steps": 100.0 * s["steps"] / g_steps,
                "best_exact_match": em,
                "gap": None if em is None else em - g_best,
                "trials": s["runs"],
                "pruned": s["pruned"],
                "failed": s["failed"],
                "best": s["best"],
            }
        )
    ems = [r["best_exact_match"] if r["best_exact_match"] is not None else 0.0 for r in rows]
    med_steps = statistics.median(r["steps"] for r in rows)
    med_em = statistics.median(ems)
    median = {
        "steps": med_steps,
        "pct_grid_steps": 100.0 * med_steps / g_steps,
        "best_exact_match": med_em,
        "gap": med_em - g_best,
    }
    ok_steps = med_steps <= TARGET_STEPS_FRACTION * g_steps
    ok_em = med_em >= g_best - TARGET_EM_GAP - 1e-12
    return {
        "grid": {"steps": g_steps, "best_exact_match": g_best, "runs": grid["runs"]},
        "seeds": rows,
        "median": median,
        "target": {
            "max_pct_grid_steps": 100 * TARGET_STEPS_FRACTION,
            "max_em_gap": TARGET_EM_GAP,
            "steps_ok": ok_steps,
            "em_ok": ok_em,
            "pass": ok_steps and ok_em,
        },
    }


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def render_table(cmp: dict[str, Any]) -> str:
    g, m, t = cmp["grid"], cmp["median"], cmp["target"]
    lines = [
        "| | steps | % of grid steps | best EM | gap to grid best | trials pruned |",
        "|---|---:|---:|---:|---:|---:|",
        f"| grid ({g['runs']} runs) | {g['steps']} | 100% | {g['best_exact_match']:.3f} | - | - |",
    ]
    for r in cmp["seeds"]:
        lines.append(
            f"| search seed {r['seed']} | {r['steps']} | {r['pct_grid_steps']:.1f}% | "
            f"{_f(r['best_exact_match'], '.3f')} | {_f(r['gap'], '+.3f')} | "
            f"{r['pruned']} of {r['trials']} |"
        )
    lines.append(
        f"| median of {len(cmp['seeds'])} seeds | {m['steps']:g} | "
        f"{m['pct_grid_steps']:.1f}% | {m['best_exact_match']:.3f} | {m['gap']:+.3f} | - |"
    )
    verdict = "PASS" if t["pass"] else "MISS"
    why = []
    if not t["steps_ok"]:
        why.append(f"steps {m['pct_grid_steps']:.1f}% > {t['max_pct_grid_steps']:.0f}%")
    if not t["em_ok"]:
        why.append(f"best EM {m['gap']:+.3f} from the grid's best, beyond -{t['max_em_gap']}")
    lines.append("")
    lines.append(
        f"{verdict}: target = within {t['max_em_gap']} exact match of the grid's best "
        f"with <= {t['max_pct_grid_steps']:.0f}% of its steps (median of the seeds)"
        + (f"; missed: {'; '.join(why)}" if why else "")
    )
    return "\n".join(lines)


# -- running ------------------------------------------------------------------------------


def ftsweep_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "ftsweep"
    return [str(exe)] if exe.exists() else [shutil.which("ftsweep") or "ftsweep"]


def git_commit(path: Path = ROOT) -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def make_snapshot(workdir: Path) -> Path:
    """The committed tree (HEAD) extracted into workdir/src, fresh each time."""
    src = workdir / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    return src


def launch(
    experiment_file: Path, workspace: Path, log: Path, source: Path = ROOT
) -> tuple[int, float]:
    """`ftsweep --workspace <ws> launch <file>` from `source`; its output goes to `log`."""
    argv = ftsweep_cmd() + ["--workspace", str(workspace), "launch", str(experiment_file)]
    env = dict(os.environ)
    if source != ROOT:  # the snapshot's package before the editable install's (cwd too: -m)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    print(f"$ {shlex.join(argv)}   (in {source}; log: {log})", flush=True)
    t0 = time.time()
    with open(log, "a") as out:
        rc = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT, cwd=source, env=env)
    wall = time.time() - t0
    print(f"  exit {rc} after {wall / 60:.1f} min", flush=True)
    return rc, wall


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "optuna", "ftsweep"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "gpu": None,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def write_yaml(cfg: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def run_grid(
    search_cfg: dict[str, Any],
    base: Path,
    workdir: Path,
    command: str,
    source: Path = ROOT,
    commit: str | None = None,
) -> dict[str, Any]:
    grid = derive_grid(search_cfg, base)
    gdir = workdir / "grid"
    file, ws = gdir / "search-grid.yaml", gdir / "ws"
    write_yaml(grid, file)
    expected = grid_points(grid)
    print(f"grid: {sum(expected.values())} runs {expected}", flush=True)
    rc, wall = launch(file, ws, gdir / "launch.log", source)
    runs = collect_runs(ws, GRID_EXPERIMENT)
    total = summarize(runs)
    return {
        "experiment": GRID_EXPERIMENT,
        "derived_from": "experiments/search.yaml",
        "command": command,
        "launch_exit": rc,
        "wall_s": round(wall, 1),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "git_commit": commit,
        "versions": versions(),
        "matrix": grid["matrix"],
        "expected_runs": expected,
        "totals": total,
        "runs": [
            {
                k: r[k]
                for k in ("method", "params", "seed", "state", "exact_match", "steps", "run_id")
            }
            for r in runs
        ],
    }


def run_search(
    search_cfg: dict[str, Any], base: Path, workdir: Path, seed: int, source: Path = ROOT
) -> dict[str, Any]:
    cfg = search_variant(search_cfg, base, seed)
    sdir = workdir / cfg["experiment"]
    file, ws = sdir / f"{cfg['experiment']}.yaml", sdir / "ws"
    write_yaml(cfg, file)
    rc, wall = launch(file, ws, sdir / "launch.log", source)
    runs = collect_runs(ws, cfg["experiment"])
    return {
        **summarize(runs),
        "launch_exit": rc,
        "wall_s": round(wall, 1),
        "workspace": str(ws),
        "trial_runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--search-file", type=Path, default=ROOT / "experiments" / "search.yaml")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ftsweep-bench/search-efficiency"))
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--seeds", default="0,1,2", help="search seeds, comma-separated")
    ap.add_argument(
        "--reuse-grid",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read the shipped grid data instead of training the grid "
        "(default: when the data file exists)",
    )
    ap.add_argument("--grid-only", action="store_true", help="stop after the grid")
    ap.add_argument(
        "--snapshot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run ftsweep from a `git archive HEAD` copy (default) or the working tree",
    )
    args = ap.parse_args(argv)
    command = "python benchmarks/search_efficiency.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    search_file, source, commit = args.search_file.resolve(), ROOT, git_commit()
    if args.snapshot:
        source = make_snapshot(args.workdir)
        if search_file.is_relative_to(ROOT):  # the committed file, data and model
            search_file = source / search_file.relative_to(ROOT)
        print(f"running ftsweep from a snapshot of {commit} in {source}", flush=True)
    search_cfg = yaml.safe_load(search_file.read_text())
    base = search_file.parent
    args.data_dir.mkdir(parents=True, exist_ok=True)
    grid_json = args.data_dir / GRID_JSON
    reuse = grid_json.exists() if args.reuse_grid is None else args.reuse_grid
    if reuse:
        grid = json.loads(grid_json.read_text())
        print(
            f"grid: reusing {grid_json} ({grid['totals']['runs']} runs, measured "
            f"{grid['measured_at']})",
            flush=True,
        )
    else:
        grid = run_grid(search_cfg, base, args.workdir, command.strip(), source, commit)
        grid_json.write_text(json.dumps(grid, indent=1) + "\n")
        print(f"grid: wrote {grid_json}", flush=True)
    gt = grid["totals"]
    print(
        f"grid: {gt['runs']} runs, {gt['steps']} steps, best exact match "
        f"{gt['best_exact_match']} ({gt['best']})",
        flush=True,
    )
    if args.grid_only:
        return 0
    searches = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        searches[seed] = run_search(search_cfg, base, args.workdir, seed, source)
        s = searches[seed]
        print(
            f"search seed {seed}: {s['steps']} steps, best {s['best_exact_match']}, "
            f"{s['pruned']} of {s['runs']} pruned, {s['failed']} failed",
            flush=True,
        )
    cmp = compare(gt, searches)
    table = render_table(cmp)
    print()
    print(table)
    out = {
        "command": command.strip(),
        "git_commit": commit,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "versions": versions(),
        **cmp,
        "table": table,
        "searches": {
            str(k): {kk: vv for kk, vv in v.items() if kk != "workspace"}
            for k, v in searches.items()
        },
    }
    (args.data_dir / TABLE_JSON).write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {args.data_dir / TABLE_JSON}")
    bad = [seed for seed, s in searches.items() if s["launch_exit"] != 0]
    if bad:
        print(f"search launch exited non-zero for seeds {bad}: see their launch.log", flush=True)
    return 0 if cmp["target"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
