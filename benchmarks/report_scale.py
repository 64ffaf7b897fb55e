"""`ftsweep report` at scale: one experiment of 1,000 runs x 2,000 logged steps.

    python benchmarks/report_scale.py                          # generate, ingest, time, profile
    python benchmarks/report_scale.py --runs 100 --steps 200 --repeats 3
    python benchmarks/report_scale.py --workspace /tmp/rs      # reuse a generated workspace

The workspace comes from ``store_scale.generate`` (the run-directory format workers
write: 8 logged metrics per step, 200 per-example scores per run, failed and resumed
runs), all in one experiment, and is ingested once. Then ``ftsweep report`` runs as its
own process ``--repeats`` times (median wall and CPU time, peak RSS: what a user
waits for, imports included), and once more under cProfile, whose top entries are
printed with the time grouped by where it goes (SQL, view-models, statistics, plots,
templates, imports). Target: <= 3 s on the 2-core dev machine. The machine's load
average is printed beside the figures, since other work on it skews them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_scale import ROOT, Size, _ftsweep, _timed, experiment_name, generate  # noqa: E402

TARGET_S = 3.0
# Stages of a report, each the cumulative time of the function(s) that do it; nested
# stages are indented. (file fragment, function name; "*": every function of the file.)
STAGES = (
    ("imports (all modules)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("open the store snapshot", "ftsweep/store/", "open_reader"),
    ("SQL: report/queries.py", "ftsweep/report/queries.py", "*"),
    ("view-model: build_view", "ftsweep/report/viewmodel.py", "build_view"),
    ("  leaderboard rows", "ftsweep/report/viewmodel.py", "_leader_rows"),
    ("    bootstrap over examples", "ftsweep/report/stats.py", "bootstrap_mean"),
    ("    t-intervals (summarize)", "ftsweep/report/stats.py", "summarize"),
    ("  pairwise tests (compare.py)", "ftsweep/report/compare.py", "compare"),
    ("  curves", "ftsweep/report/viewmodel.py", "_curves"),
    ("  decision cards", "ftsweep/report/cards.py", "decision_cards"),
    ("plots: curve_svg", "ftsweep/report/plots.py", "curve_svg"),
    ("plots: every figure's SVG text", "ftsweep/report/svgchart.py", "svg"),
    ("templates: render_template", "ftsweep/report/render.py", "render_template"),
)


def stage_times(raw: dict) -> list[tuple[str, float]]:
    """Cumulative seconds of each stage in a pstats table (``Stats.stats``)."""
    out = []
    for label, fragment, func in STAGES:
        total = sum(
            ct
            for (filename, _, name), (_, _, _, ct, _) in raw.items()
            if fragment in filename and (func == "*" or name == func)
        )
        out.append((label, total))
    return out


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, {os.cpu_count()} cores)"


def prepare(ws: Path, size: Size, jobs: int) -> str:
    """Generate and ingest the workspace unless it is there already; its experiment name."""
    name = experiment_name(size, 0)
    marker = ws / f".report-scale-{size.runs}x{size.steps}"
    if marker.exists():
        print(f"reusing {ws}")
        return name
    t0 = time.perf_counter()
    generate(ws, size, jobs=jobs)
    print(
        f"generated {size.runs:,} runs x {size.steps:,} steps in {time.perf_counter() - t0:.1f} s"
    )
    timing, _ = _ftsweep(ws, "ingest", "--rebuild")
    print(f"ingested in {timing.wall:.1f} s (CPU {timing.cpu:.1f} s)")
    marker.touch()
    return name


def profile(ws: Path, name: str, out: Path, top: int) -> None:
    """One `ftsweep report` under cProfile, in its own process; print where the time goes."""
    prof = out / "report.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "ftsweep.cli",
           "--workspace", str(ws), "report", "--experiment", name, "--out", str(out / "p")]  # fmt: skip
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    stats = pstats.Stats(str(prof))
    raw = stats.stats  # type: ignore[attr-defined]
    print(f"\nprofile: {stats.total_tt:.2f} s in all (profiling slows Python code ~1.5-2x)")  # type: ignore[attr-defined]
    for label, seconds in stage_times(raw):
        print(f"  {label:<34} {seconds:6.2f} s")
    print(f"\ntop {top} by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)
    print(f"top {top} by own time:")
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="processes generating runs")
    parser.add_argument("--workspace", type=Path, help="kept (default: a temporary one)")
    parser.add_argument("--top", type=int, default=25, help="profile entries shown")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    size = dataclasses.replace(Size(), runs=args.runs, steps=args.steps, experiments=1)
    with tempfile.TemporaryDirectory() as scratch:
        ws = args.workspace or Path(scratch) / "ws"
        out = Path(scratch)
        name = prepare(ws, size, args.jobs)
        _ftsweep(ws, "report", "--experiment", name, "--out", str(out / "warm"))  # page cache
        before = load_average()
        timing = _timed(
            lambda: _ftsweep(ws, "report", "--experiment", name, "--out", str(out / "r")),
            args.repeats,
        )
        verdict = "met" if timing.wall <= TARGET_S else f"missed ({timing.wall / TARGET_S:.1f}x)"
        print(
            f"\n`ftsweep report` of {size.runs:,} runs x {size.steps:,} steps: "
            f"median of {args.repeats}: {timing.wall:.2f} s wall, {timing.cpu:.2f} s CPU, "
            f"peak {timing.rss or 0:.0f} MB; target <= {TARGET_S:.0f} s: {verdict}"
        )
        print(f"  before: {before}\n  after:  {load_average()}")
        if not args.no_profile:
            profile(ws, name, out, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
