"""The command line: one function per command; domain errors become messages here only.

Exit codes: 0 success; 1 a run failed or a runtime error; 2 bad input (experiment
file, arguments, SQL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ftsweep.errors import ConfigError, FtsweepError

console = Console()
# soft_wrap: messages are not broken into lines by rich, so a path in one stays whole
# (copyable, and findable in a log) whatever the width of the terminal.
err_console = Console(stderr=True, soft_wrap=True)


def _workspace(args: argparse.Namespace) -> Any:
    from ftsweep.workspace import Workspace

    return Workspace(Path(args.workspace))


def _load(args: argparse.Namespace, deep: bool = True) -> Any:
    from ftsweep.config.load import load_experiment

    return load_experiment(Path(args.file), deep=deep, max_runs=args.max_runs)


def _positive_mb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of MB above 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _report_formats(text: str) -> str:
    """argparse type of ``report --format``: a bad name is a usage error (exit 2)."""
    from ftsweep.report.export import parse_formats

    try:
        parse_formats([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _print_json(data: Any) -> None:
    # Indented only when short: an indent makes json use its pure-Python encoder, 10x
    # slower (seconds for a 100,000-run plan). Either way one valid JSON document.
    big = isinstance(data, list) and len(data) > 1000
    print(json.dumps(data, indent=None if big else 2, default=str, ensure_ascii=False))


def _show(value: Any) -> str:
    """Text for a table cell: control and format characters (ESC sequences, bidi
    overrides, newlines) from names and values are shown as escapes, not obeyed by the
    terminal; then rich markup is escaped."""
    text = str(value)
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
        text = "".join(
            ch.encode("unicode_escape").decode("ascii")
            if unicodedata.category(ch) in ("Cc", "Cf")
            else ch
            for ch in text
        )
    return escape(text)


def _params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items()) or "-"


def cmd_validate(args: argparse.Namespace) -> int:
    """Report every problem in an experiment file at once; write nothing."""
    exp = _load(args)
    out = Console(soft_wrap=True)  # a path in a line stays whole, whatever the width
    for note in exp.notes:  # not problems: the file is valid, but read these
        out.print(f"[yellow]warning[/] {_show(note.format())}")
    methods = sorted({r.method for r in exp.runs} | {p.method for p, _ in exp.pending})
    if exp.runs or exp.pending or exp.search is None:
        count = f"{len(exp.runs)} runs" if not exp.pending else f"{len(exp.pending)} configurations"
        out.print(
            f"[green]ok[/] {escape(args.file)}: experiment "
            f"{_show(repr(exp.spec.experiment))}, {count} "
            f"({_show(', '.join(methods))}) × seeds {exp.spec.seeds}"
        )
    stage = exp.stage
    while stage is not None:  # the chain of parents, each loaded and checked
        out.print(
            f"[green]ok[/] parent {_show(repr(stage.parent.spec.experiment))} "
            f"({escape(str(stage.file))}), {len(stage.parent.runs)} runs; select "
            f"{_show(stage.select)}"
        )
        stage = stage.parent.stage
    if exp.search is not None:
        from ftsweep.search.show import budget_line

        out.print(
            f"[green]ok[/] {escape(args.file)}: search over "
            f"{', '.join(exp.search.names)}; {escape(budget_line(exp))}"
        )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Print every run and what launch would do with it; train nothing.

    The file's schema, matrix and method parameters are checked; the deep checks of
    `validate` (model, data records, hardware), which import torch, only with --check."""
    from ftsweep.plan import plan

    exp = _load(args, deep=args.check)
    items = plan(exp, _workspace(args), retry_failed=args.retry_failed)
    stages = []
    if exp.stage is not None:
        from ftsweep.plan import chain

        stages = chain(exp, _workspace(args))
    if args.json:
        out: Any = [
            {
                "run_id": i.run.run_id,
                "method": i.run.method,
                "params": i.run.params,
                "seed": i.run.seed,
                "state": i.state,
                "action": str(i.action),
            }
            for i in items
        ]
        if stages:
            out = {"stages": stages, "runs": out, "pending": len(exp.pending)}
        if exp.search is not None:
            from ftsweep.search.show import plan_rows, status_rows

            out = {
                "runs": out,
                "search": plan_rows(exp),
                "trials": status_rows(_workspace(args), exp.spec.experiment),
            }
        _print_json(out)
        return 0
    for st in stages:
        _print_stage(st)
    if exp.pending:
        console.print(
            f"{_show(exp.spec.experiment)}: {len(exp.pending)} configuration(s) × seeds "
            f"{exp.spec.seeds}; their run ids are known once the parent run is selected"
        )
        return 0
    if exp.search is not None:
        _print_search_plan(exp, _workspace(args))
        if not items:
            return 0
    t = Table(
        title=f"plan: {_show(exp.spec.experiment)} ({len(items)} runs)",
        caption=None
        if args.check
        else "model, data records and hardware not checked: `ftsweep validate` or `plan --check`",
    )
    for col in ("run_id", "method", "varied values", "seed", "state", "launch would"):
        t.add_column(col)
    for i in items:
        hint = " (use --retry-failed)" if i.state == "failed" and not args.retry_failed else ""
        t.add_row(
            i.run.run_id,
            _show(i.run.method),
            _show(_params(i.run.params)),
            str(i.run.seed),
            i.state,
            f"{i.action}{hint}",
        )
    console.print(t)
    return 0


def _print_stage(st: dict[str, Any]) -> None:
    """One line per stage of the chain: the parent, its runs, the run the child starts from."""
    states = ", ".join(f"{n} {s}" for s, n in sorted(st["states"].items())) or "none"
    chosen = (
        f"starts from run {st['selected']} ({_show(st['how'])})"
        if st["selected"]
        else "selected after the parent trains"
    )
    console.print(
        f"stage: {_show(st['child'])} ← parent {_show(st['parent'])} "
        f"({_show(st['file'])}): {st['runs']} runs ({states}; {st['to_train']} to train); "
        f"select {_show(st['select'])}: {chosen}",
        highlight=False,
    )
    for warning in st["warnings"]:
        console.print(f"[yellow]warning[/] {_show(warning)}", highlight=False)


def _print_search_plan(exp: Any, ws: Any) -> None:
    from ftsweep.search.show import budget_line, fmt_fixed, plan_rows, status_rows, total_bound

    rows = plan_rows(exp)
    done = {r["method"]: r for r in status_rows(ws, exp.spec.experiment)}
    t = Table(title=f"search: {_show(exp.spec.experiment)}", caption=_show(budget_line(exp)))
    for col in ("method", "searched", "fixed", "trials", "done so far", "max training steps"):
        t.add_column(col)
    for r in rows:
        d = done.get(r["method"], {})
        so_far = (
            f"{d.get('complete', 0)} complete, {d.get('pruned', 0)} pruned, "
            f"{d.get('fail', 0)} failed"
            if d
            else "0"
        )
        grace = "".join(f"\n(pruner {k}={v})" for k, v in r["pruner_override"].items())
        t.add_row(
            _show(r["method"]),
            "\n".join(_show(f"{k}: {v}") for k, v in r["space"].items()),
            _show(fmt_fixed(r["fixed"]) or "-"),
            str(r["trials"] if r["trials"] is not None else "shared") + grace,
            so_far,
            f"{r['max_training_steps']:,}" if r["max_training_steps"] else "-",
        )
    console.print(t)
    bound = total_bound(exp, rows)
    if bound is not None:
        console.print(f"at most {bound:,} training steps in all (pruning trains fewer)")


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel the running and queued jobs of an experiment (local or Slurm)."""
    from ftsweep.config.schema import LaunchBlock
    from ftsweep.launch.jobs import cancel_experiment

    stopped = cancel_experiment(_workspace(args), args.experiment, LaunchBlock())
    console.print(
        f"cancelled {len(stopped)} run(s)" + (f": {', '.join(stopped)}" if stopped else "")
    )
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    """Train every run that is missing (relaunch = resume); exit 1 if any run failed."""
    from ftsweep.launch.launcher import launch
    from ftsweep.report_settings import record_settings

    exp = _load(args)
    # the file's report: block, for `ftsweep report` (which reads only the workspace)
    record_settings(_workspace(args), exp.spec.experiment, exp.spec.report.model_dump(mode="json"))
    summary = launch(
        exp,
        _workspace(args),
        retry_failed=args.retry_failed,
        console=console,
        executor_name=args.executor,
        detach=args.detach,
        lock_wait_s=args.wait,
    )
    if args.detach:
        console.print(
            f"{len(summary.detached)} run(s) submitted, {summary.skipped} skipped; "
            "`ftsweep status` shows them, `ftsweep launch` again reattaches"
        )
        return 0
    pruned = f"{len(summary.pruned)} pruned, " if summary.pruned else ""
    console.print(
        f"{len(summary.complete)} trained, {pruned}{len(summary.failed)} failed, "
        f"{summary.skipped} skipped, {summary.total} total in {summary.wall_s:.1f}s"
    )
    if exp.search is not None:
        console.print(
            f"search: {summary.trials} trial(s) finished in this launch "
            "(`ftsweep status` shows the best per method)"
        )
    if summary.failed:
        console.print(
            f"[red]failed runs:[/] {', '.join(summary.failed)} "
            "(see `ftsweep status` and the run's worker.log)"
        )
    if summary.lost:
        console.print(
            f"[yellow]{len(summary.lost)} run(s) ended but could not be recorded:[/] "
            + ", ".join(summary.lost)
            + " (`ftsweep launch` again resumes them)"
        )
    if summary.store_problem:
        err_console.print(
            f"[red]the store is behind the run directories:[/] {escape(summary.store_problem)}",
            highlight=False,
        )
    if summary.still_failed:
        console.print(
            f"[yellow]{len(summary.still_failed)} run(s) failed earlier and were not "
            "retried:[/] " + ", ".join(summary.still_failed) + " (use --retry-failed)"
        )
    return summary.exit_code


# Above this many runs, `status` shows counts and only the runs that need attention:
# a rich table of thousands of rows takes seconds to render and nobody reads it.
STATUS_ROWS = 50
_ATTENTION = ("running", "lost", "failed", "pending", "unreadable")


def _status_table(rows: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title)
    for col in ("run_id", "method", "params", "seed", "status", "progress / metric", "wall s"):
        t.add_column(col, no_wrap=col in ("run_id", "status"))
    for r in rows:
        if r["status"] == "running":
            detail = f"step {r.get('step') or 0}/{r.get('max_steps') or '?'}"
        elif isinstance(r.get("primary_value"), (int, float)):
            detail = f"{r.get('primary_metric')}={r['primary_value']:.4g}"
        else:
            detail = str(r.get("failure_cause") or "")[:60]
        wall = f"{r['wall_time_s']:.1f}" if r.get("wall_time_s") is not None else ""
        t.add_row(
            _show(r["run_id"]),
            _show(str(r["method"])),
            _show(_params(r.get("params") or {})),
            str(r.get("seed")),
            r["status"],
            _show(detail),
            wall,
        )
    return t


def _status_summary(rows: list[dict[str, Any]]) -> None:
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        c = counts.setdefault((str(r["experiment"]), str(r["method"])), {})
        c[r["status"]] = c.get(r["status"], 0) + 1
    states = sorted({st for c in counts.values() for st in c})
    t = Table(title=f"{len(rows)} runs")
    for col in ("experiment", "method", *states):
        t.add_column(col)
    for (exp, method), c in sorted(counts.items()):
        t.add_row(_show(exp), _show(method), *(str(c.get(st, "")) for st in states))
    console.print(t)
    attention = [r for r in rows if r["status"] in _ATTENTION]
    if attention:
        more = len(attention) - STATUS_ROWS
        console.print(
            _status_table(
                attention[:STATUS_ROWS],
                "runs that are not finished or failed"
                + (f" (first {STATUS_ROWS} of {len(attention)})" if more > 0 else ""),
            )
        )
    console.print("(`ftsweep status --all` lists every run, `--json` too)")


def cmd_status(args: argparse.Namespace) -> int:
    """Runs and their states, read live from the run directories."""
    from ftsweep.store import status_rows

    rows = status_rows(_workspace(args), args.experiment)
    if args.json:
        _print_json(rows)
        return 0
    if len(rows) > STATUS_ROWS and not args.all:
        _status_summary(rows)
    else:
        experiments = sorted({str(r["experiment"]) for r in rows})
        console.print(_status_table(rows, f"runs: {_show(', '.join(experiments))}"))
    _print_trials(_workspace(args), args.experiment)
    return 0


def _print_trials(ws: Any, experiment: str | None) -> None:
    """Search trials by method and state, with the best so far (from the summary file)."""
    from ftsweep.search.summary import status_rows as trial_rows

    rows = trial_rows(ws, experiment)
    if not rows:
        return
    t = Table(title="search trials")
    for col in (
        "experiment",
        "method",
        "running",
        "complete",
        "pruned",
        "failed",
        "budget",
        "best so far",
    ):
        t.add_column(col)
    for r in rows:
        best = (
            f"{r['objective']}={r['best']:.4g} (trial {r['best_trial']})"
            if isinstance(r.get("best"), int | float)
            else "-"
        )
        budget = f"{r['n_trials']} per method" if r.get("budget") == "per_method" else "shared"
        warm = f" (+{r['warm_start']} from the grid)" if r.get("warm_start") else ""
        t.add_row(
            _show(str(r["experiment"])),
            _show(str(r["method"])),
            str(r.get("running", 0)),
            str(r.get("complete", 0)) + warm,
            str(r.get("pruned", 0)),
            str(r.get("fail", 0)),
            budget,
            _show(best),
        )
    console.print(t)


def cmd_query(args: argparse.Namespace) -> int:
    """Run read-only SQL over the store."""
    from ftsweep.store import run_query_noting

    columns, rows, note = run_query_noting(_workspace(args), args.sql, args.timeout)
    if note:  # on stderr, so `--json` output stays parseable
        err_console.print(f"[yellow]note:[/] {_show(note)}", highlight=False)
    if args.json:
        _print_json([dict(zip(columns, r, strict=True)) for r in rows])
        return 0
    t = Table()
    for c in columns:
        t.add_column(_show(c))
    for r in rows:
        t.add_row(*(_show(str(v)) for v in r))
    console.print(t)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Render reports/<experiment>/index.html and report.md."""
    from ftsweep.report import render_report
    from ftsweep.report.export import parse_formats

    formats = parse_formats(args.format)  # each value was checked by _report_formats
    paths = render_report(
        _workspace(args),
        args.experiment,
        Path(args.out) if args.out else None,
        Path(args.templates) if args.templates else None,
        formats,
        args.against,
        memory_budget_mb=args.memory_budget_mb,
    )
    for p in paths:
        console.print(f"wrote {escape(str(p))}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest run directories into the store (--rebuild: recreate it from them)."""
    from ftsweep.store import Store, rebuild

    ws = _workspace(args)
    t0 = time.time()
    if args.rebuild:
        stats = rebuild(ws)
    else:
        # A reader catching up holds the lock for a moment; a sweep holds it throughout.
        with ws.lock(wait_s=30.0), Store.writer(ws) as store:
            stats = store.ingest_all(args.experiment)
    for problem in stats.problems[:20]:
        err_console.print(f"[yellow]bad row:[/] {escape(problem)}", highlight=False)
    if len(stats.problems) > 20:
        err_console.print(f"[yellow]... and {len(stats.problems) - 20} more bad rows[/]")
    console.print(f"ingested in {time.time() - t0:.2f}s: {escape(stats.summary())}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a trained run's model: with --merge a standalone model (LoRA family), else its
    own artefacts (full weights, or the adapter plus tokenizer)."""
    from ftsweep.export import export

    rd = _one_run(_workspace(args), args.run_id)
    out = export(rd.path, Path(args.out or f"exports/{rd.run_id}"), args.merge)
    console.print(f"wrote {escape(str(out))}")
    return 0


def _one_run(ws: Any, prefix: str) -> Any:
    matches = [rd for rd in ws.iter_run_dirs() if rd.run_id.startswith(prefix)]
    if len(matches) != 1:
        found = ", ".join(rd.run_id for rd in matches[:5]) or "none"
        raise FtsweepError(
            f"run id {prefix!r} matches {len(matches)} runs ({found}); "
            "give more of it (see `ftsweep status`)"
        )
    return matches[0]


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Re-evaluate a finished run from its saved artefacts; exit 1 if metrics differ."""
    from ftsweep.reevaluate import reevaluate

    rd = _one_run(_workspace(args), args.run_id)
    out = reevaluate(rd.path)
    rec, now = out["recorded"], out["now"]
    differs = [
        k
        for k in rec
        if k in now
        and rec[k] is not None
        and abs(float(rec[k]) - float(now[k])) > args.tolerance * max(1.0, abs(float(rec[k])))
    ]
    if args.json:
        _print_json({**out, "differs": differs})
    else:
        t = Table(title=f"re-evaluation of {rd.run_id}")
        for col in ("metric", "recorded", "now"):
            t.add_column(col)
        for k in sorted(rec):
            t.add_row(
                k, f"{rec[k]:.6g}" if rec[k] is not None else "-", f"{now.get(k, float('nan')):.6g}"
            )
        console.print(t)
    return 1 if differs else 0


def cmd_methods(args: argparse.Namespace) -> int:
    """List fine-tuning methods with their parameters and defaults."""
    from ftsweep.methods import METHODS

    rows: list[dict[str, Any]] = []
    for name, cls in sorted(METHODS.items()):
        params = {
            k: {
                "type": str(f.annotation).replace("typing.", ""),
                "default": f.get_default(call_default_factory=True),
            }
            for k, f in cls.Params.model_fields.items()
        }
        rows.append({"name": name, "description": cls.description, "params": params})
    if args.json:
        _print_json(rows)
        return 0
    t = Table(title="methods")
    for col in ("method", "description", "parameters (default)"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["name"],
            r["description"],
            escape(", ".join(f"{k}={v['default']!r}" for k, v in r["params"].items()) or "-"),
        )
    console.print(t)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of experiment files (for editors; docs/experiments.md)."""
    from ftsweep.config.jsonschema import experiment_schema

    print(json.dumps(experiment_schema(), indent=2, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ftsweep", description="Declarative fine-tuning sweeps.")
    ws_help = "workspace directory: run directories and the store (default: .ftsweep)"
    p.add_argument("--workspace", default=".ftsweep", help=ws_help)
    # Accepted after the command too (`ftsweep status --workspace W`); SUPPRESS keeps a
    # value given before the command when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", default=argparse.SUPPRESS, help=ws_help)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Any, **kw: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name, help=fn.__doc__.strip().splitlines()[0], description=fn.__doc__, parents=[common]
        )
        sp.set_defaults(fn=fn)
        return sp

    for name, fn in (("validate", cmd_validate), ("plan", cmd_plan), ("launch", cmd_launch)):
        sp = add(name, fn)
        sp.add_argument("file", help="experiment YAML file")
        sp.add_argument(
            "--max-runs",
            type=_positive_int,
            metavar="N",
            help="refuse a matrix of more runs than this, before expanding it "
            "(default: the file's launch.max_runs, else 10,000)",
        )
        if name == "validate":
            continue
        sp.add_argument("--retry-failed", action="store_true", help="train failed runs again")
        if name == "plan":
            sp.add_argument("--json", action="store_true", help="machine-readable output")
            sp.add_argument(
                "--check",
                action="store_true",
                help="also run validate's deep checks (model, data records, "
                "hardware: seconds, as they import torch and transformers)",
            )
        else:
            sp.add_argument(
                "--executor",
                choices=["local", "slurm"],
                help="where runs execute (default: the file's launch.executor)",
            )
            sp.add_argument(
                "--detach",
                action="store_true",
                help="submit the runs and return (slurm); launch again to reattach",
            )
            wait = sp.add_mutually_exclusive_group()
            wait.add_argument(
                "--wait",
                type=float,
                default=60.0,
                metavar="SECONDS",
                help="how long to wait for a workspace another process holds "
                "(default 60: a reader refreshing the store holds it briefly)",
            )
            wait.add_argument(
                "--no-wait",
                dest="wait",
                action="store_const",
                const=0.0,
                help="fail at once if another process holds the workspace",
            )
    sp = add("cancel", cmd_cancel)
    sp.add_argument("experiment", help="the experiment whose jobs to cancel")
    sp = add("status", cmd_status)
    sp.add_argument("--experiment", help="only this experiment")
    sp.add_argument(
        "--all",
        action="store_true",
        help=f"list every run (above {STATUS_ROWS} runs: counts, and the runs "
        "not finished or failed)",
    )
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = add("query", cmd_query)
    sp.add_argument("sql", help='SQL, e.g. "select method, count(*) from runs group by method"')
    sp.add_argument("--json", action="store_true", help="rows as JSON objects")
    sp.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="stop the query after this many seconds (default: no limit)",
    )
    sp = add("report", cmd_report)
    sp.add_argument("--experiment", help="only this experiment (default: all)")
    sp.add_argument(
        "--out",
        help="output directory (default: reports/<experiment> beside the workspace directory)",
    )
    sp.add_argument("--templates", help="directory of templates that override the built-in ones")
    sp.add_argument(
        "--memory-budget-mb",
        type=_positive_mb,
        metavar="MB",
        help="peak memory budget of the 'best under a memory budget' card "
        "(default: the experiment file's report.memory_budget_mb; none: the card says so)",
    )
    sp.add_argument(
        "--format",
        action="append",
        type=_report_formats,
        metavar="FORMATS",
        help="what to write: html, md (the default: both), csv, parquet, json (leaderboard "
        "and per-run tables); repeat or separate with commas",
    )
    sp.add_argument(
        "--against",
        metavar="EXPERIMENT",
        help="compare with another experiment that shares methods (e.g. before a data change)",
    )
    sp = add("ingest", cmd_ingest)
    sp.add_argument(
        "--rebuild", action="store_true", help="recreate the store from run directories"
    )
    sp.add_argument("--experiment", help="only this experiment")
    sp = add("export", cmd_export)
    sp.add_argument("run_id", help="a run id or a unique prefix of one")
    sp.add_argument("--out", help="output directory (default: exports/<run_id>)")
    sp.add_argument(
        "--merge", action="store_true", help="merge a LoRA-family adapter into the base weights"
    )
    sp = add("evaluate", cmd_evaluate)
    sp.add_argument("run_id", help="a run id or a unique prefix of one")
    sp.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="relative difference allowed (float sums differ in the last bits)",
    )
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = add("methods", cmd_methods)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    add("schema", cmd_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        err_console.print(escape(str(exc)), highlight=False)
        return 2
    except FtsweepError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted: running runs were stopped; `ftsweep launch` resumes")
        return 130
    except BrokenPipeError:  # `ftsweep query ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - known domain errors from other layers
        from ftsweep.store import QueryError, StoreError
        from ftsweep.workspace import WorkspaceLocked

        if isinstance(exc, QueryError):
            err_console.print(f"[red]query error:[/] {escape(str(exc))}", highlight=False)
            return 2
        if isinstance(exc, (WorkspaceLocked, StoreError)):
            err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
