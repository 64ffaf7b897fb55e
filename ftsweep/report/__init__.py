"""Reports: queries (SQL) → view-models (pure Python) → Jinja templates → HTML / Markdown.

``render_report`` is the one entry point; see its docstring for where files go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from duckdb import DuckDBPyConnection

from ftsweep.report import queries, search_queries
from ftsweep.report.corpus import CorpusStats, corpus_stats
from ftsweep.report.diff import DiffError, DiffView, build_diff
from ftsweep.report.export import (
    DOCUMENT_FORMATS,
    TABLE_FORMATS,
    leaderboard_records,
    run_records,
    stage_records,
    write_tables,
)
from ftsweep.report.registry_facts import metric_aggregate
from ftsweep.report.render import HTML_TEMPLATE, MD_TEMPLATE, ReportError, make_env
from ftsweep.report.render import render_template as _render
from ftsweep.report.search_view import SearchView, build_search_view
from ftsweep.report.stages import load_stages
from ftsweep.report.viewmodel import (
    CURVE_METRICS,
    LR_FIGURE,
    PARETO_FIGURE,
    ReportView,
    build_view,
    curves_from_means,
    eval_spec,
    evaluator_params,
    leader_run_ids,
)
from ftsweep.report_settings import load_settings
from ftsweep.search.summary import journal_path
from ftsweep.store import open_reader
from ftsweep.workspace import Workspace, safe_name

__all__ = ["ReportError", "ReportView", "render_report"]


def _search_view(
    workspace: Workspace, con: DuckDBPyConnection, name: str, runs: list[dict[str, Any]]
) -> SearchView | None:
    """The search sections' view of an experiment; None (no sections) without trials."""
    trials = search_queries.trials(con, name)
    if not trials:
        return None
    facts = search_queries.study_facts(journal_path(workspace, name))
    return build_search_view(trials, runs, facts)


def _corpus(
    con: DuckDBPyConnection,
    name: str,
    runs: list[dict[str, Any]],
    metric: str,
    split: str | None,
    run_ids: list[str] | None = None,
) -> CorpusStats | None:
    """Corpus statistics of the primary metric, if its evaluator aggregates by corpus."""
    if metric_aggregate(metric) != "corpus":  # asked without importing every evaluator
        return None  # no need to read the texts (nor to import sacrebleu)
    return corpus_stats(
        metric, evaluator_params(runs), queries.example_texts(con, name, metric, split, run_ids)
    )


def _view(
    con: DuckDBPyConnection,
    name: str,
    runs: list[dict[str, Any]],
    memory_budget_mb: float | None = None,
) -> ReportView:
    """One experiment's view, reading per-example rows and curves of its leaders only.

    The leaderboard is chosen from the runs' aggregate metrics alone, so it is built
    first without per-example rows; then only its runs' examples (every statistic over
    examples compares leaderboard rows) and curves are read. A 1,000-run sweep would
    otherwise pull every run's examples and every logged step into Python.
    """
    metric, split = eval_spec(runs)
    evals = queries.eval_metrics(con, name)
    keep = leader_run_ids(runs, evals)
    view = build_view(
        name,
        runs,
        evals,
        [],  # curves come averaged and downsampled from DuckDB
        queries.example_scores(con, name, metric, split, keep),
        _corpus(con, name, runs, metric, split, keep),
        memory_budget_mb=memory_budget_mb,
    )
    owners = {rid: row.label for row in view.leaderboard for rid in row.run_ids}
    means = queries.curve_means(con, owners, CURVE_METRICS)
    return replace(view, curves=tuple(curves_from_means(list(view.leaderboard), means)))


def _diff(
    con: DuckDBPyConnection, view: ReportView, runs: list[dict[str, Any]], other: str
) -> DiffView:
    """``view`` compared with experiment ``other`` (``report --against``)."""
    other_runs = queries.runs(con, other)
    if not other_runs:
        known = ", ".join(queries.experiments(con)) or "none"
        raise ReportError(f"--against: no runs of experiment {other!r} in the store ({known})")
    metric, split = eval_spec(runs)
    other_view = _view(con, other, other_runs)
    here = sorted(rid for row in view.leaderboard for rid in row.run_ids)
    there = sorted(rid for row in other_view.leaderboard for rid in row.run_ids)
    examples = queries.example_scores(con, view.experiment, metric, split, here)
    examples += queries.example_scores(con, other, metric, split, there)
    corpus = None
    if _corpus(con, view.experiment, runs, metric, split, []) is not None:  # both sides' texts
        texts = queries.example_texts(con, view.experiment, metric, split, here)
        texts += queries.example_texts(con, other, metric, split, there)
        corpus = corpus_stats(metric, evaluator_params(runs), texts)
    try:
        return build_diff(view, runs, other_view, other_runs, split, examples, corpus)
    except DiffError as exc:
        raise ReportError(f"--against: {exc}") from None


def _load_views(
    workspace: Workspace,
    experiment: str | None,
    memory_budget_mb: float | None = None,
    against: str | None = None,
) -> list[ReportView]:
    con = open_reader(workspace)
    try:
        names = [experiment] if experiment is not None else queries.experiments(con)
        views = []
        for name in names:
            runs = queries.runs(con, name)
            if not runs:
                raise ReportError(f"no runs of experiment {name!r} in the store")
            budget = memory_budget_mb
            if budget is None:
                budget = load_settings(workspace, name).get("memory_budget_mb")
            view = _view(con, name, runs, budget)
            view = replace(view, search=_search_view(workspace, con, name, runs))
            view = replace(view, stages=load_stages(con, view, runs, eval_spec(runs)[1]))
            if against is not None and against != name:
                view = replace(view, diff=_diff(con, view, runs, against))
            views.append(view)
        return views
    finally:
        con.close()


def _tables(workspace: Workspace, view: ReportView) -> dict[str, list[dict[str, Any]]]:
    """The leaderboard and per-run tables of one experiment (``--format csv|parquet|json``)."""
    con = open_reader(workspace)
    try:
        rows = queries.run_table(con, view.experiment)
    finally:
        con.close()
    tables = {
        "leaderboard": leaderboard_records(view),
        "runs": run_records(rows, view.metric_names),
    }
    if view.stages:
        tables["stages"] = stage_records(view)
    return tables


def render_report(
    workspace: Workspace,
    experiment: str | None = None,
    out_dir: Path | None = None,
    template_dir: Path | None = None,
    formats: Sequence[str] = DOCUMENT_FORMATS,
    against: str | None = None,
    memory_budget_mb: float | None = None,
) -> list[Path]:
    """Write ``index.html`` and ``report.md`` per experiment; return the paths written.

    ``formats`` picks what is written (``export.FORMATS``): html, md, and the tables
    for notebooks (csv, parquet, json: ``leaderboard.*`` and ``runs.*``, report/export.py).
    ``against`` names another experiment to compare each report with (report/diff.py).

    Files go to ``<workspace.reports_dir>/<safe experiment>/``. With ``experiment``
    given, ``out_dir`` replaces that directory; with ``experiment=None`` (every
    experiment in the store) each one gets ``<out_dir>/<safe experiment>/``. Raises
    ``ReportError`` for an unknown experiment or a broken template. ``memory_budget_mb``
    overrides each experiment's recorded ``report.memory_budget_mb`` (report_settings).
    """
    from ftsweep.report.plots import curve_svg, lr_svg, pareto_svg

    env = make_env(template_dir)
    written: list[Path] = []
    for view in _load_views(workspace, experiment, memory_budget_mb, against):
        if out_dir is not None and experiment is not None:
            dest = Path(out_dir)
        else:
            dest = Path(out_dir or workspace.reports_dir) / safe_name(view.experiment)
        svgs = {c.metric: curve_svg(c, f"fig{i}") for i, c in enumerate(view.curves)}
        # a handful of aggregate figures, never one per run: the report must stay fast
        if any(a.points for a in view.pareto):
            svgs[PARETO_FIGURE] = pareto_svg(view.pareto, view.primary_metric, "pareto")
        if view.lr_curves:
            svgs[LR_FIGURE] = lr_svg(view.lr_curves, view.primary_metric, "lr")
        if view.forgetting:
            from ftsweep.report.forgetting_plot import FIGURE_KEY, forgetting_svg

            svgs[FIGURE_KEY] = forgetting_svg(view.forgetting, view.primary_metric, "forget")
        if view.search is not None:  # figure names ("search-...") never equal a metric's
            from ftsweep.report.search_plots import search_svgs  # matplotlib: slow import

            svgs.update(search_svgs(view.search))
        documents = []
        if "html" in formats:
            documents.append((HTML_TEMPLATE, _render(env, HTML_TEMPLATE, view=view, svgs=svgs)))
        if "md" in formats:
            documents.append((MD_TEMPLATE, _render(env, MD_TEMPLATE, view=view)))
        dest.mkdir(parents=True, exist_ok=True)
        tables = [f for f in formats if f in TABLE_FORMATS]
        if tables:
            written += write_tables(_tables(workspace, view), dest, tables)
        for name, text in documents:
            path = dest / name
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)  # a reader never sees half a report
            written.append(path)
    return written
