"""Reports: queries (SQL) → view-models (pure Python) → Jinja templates → HTML / Markdown.

``render_report`` is the one entry point; see its docstring for where files go.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from duckdb import DuckDBPyConnection

from ftsweep.report import queries, search_queries
from ftsweep.report.corpus import CorpusStats, corpus_stats
from ftsweep.report.render import HTML_TEMPLATE, MD_TEMPLATE, ReportError, make_env
from ftsweep.report.render import render_template as _render
from ftsweep.report.search_view import SearchView, build_search_view
from ftsweep.report.viewmodel import (
    CURVE_METRICS,
    LR_FIGURE,
    PARETO_FIGURE,
    ReportView,
    build_view,
    eval_spec,
    evaluator_params,
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
    con: DuckDBPyConnection, name: str, runs: list[dict[str, Any]], metric: str, split: str | None
) -> CorpusStats | None:
    """Corpus statistics of the primary metric, if its evaluator aggregates by corpus."""
    from ftsweep.evaluators import corpus_evaluator  # lazy: only to ask how it aggregates

    if corpus_evaluator(metric, evaluator_params(runs)) is None:
        return None  # no need to read the texts
    return corpus_stats(
        metric, evaluator_params(runs), queries.example_texts(con, name, metric, split)
    )


def _load_views(
    workspace: Workspace, experiment: str | None, memory_budget_mb: float | None = None
) -> list[ReportView]:
    con = open_reader(workspace)
    try:
        names = [experiment] if experiment is not None else queries.experiments(con)
        views = []
        for name in names:
            runs = queries.runs(con, name)
            if not runs:
                raise ReportError(f"no runs of experiment {name!r} in the store")
            metric, split = eval_spec(runs)
            budget = memory_budget_mb
            if budget is None:
                budget = load_settings(workspace, name).get("memory_budget_mb")
            view = build_view(
                name,
                runs,
                queries.eval_metrics(con, name),
                queries.curves(con, name, CURVE_METRICS),
                queries.example_scores(con, name, metric, split),
                _corpus(con, name, runs, metric, split),
                memory_budget_mb=budget,
            )
            views.append(replace(view, search=_search_view(workspace, con, name, runs)))
        return views
    finally:
        con.close()


def render_report(
    workspace: Workspace,
    experiment: str | None = None,
    out_dir: Path | None = None,
    template_dir: Path | None = None,
    memory_budget_mb: float | None = None,
) -> list[Path]:
    """Write ``index.html`` and ``report.md`` per experiment; return the paths written.

    Files go to ``<workspace.reports_dir>/<safe experiment>/``. With ``experiment``
    given, ``out_dir`` replaces that directory; with ``experiment=None`` (every
    experiment in the store) each one gets ``<out_dir>/<safe experiment>/``. Raises
    ``ReportError`` for an unknown experiment or a broken template. ``memory_budget_mb``
    overrides each experiment's recorded ``report.memory_budget_mb`` (report_settings).
    """
    from ftsweep.report.plots import curve_svg, lr_svg, pareto_svg  # matplotlib: slow import
    from ftsweep.report.search_plots import search_svgs

    env = make_env(template_dir)
    written: list[Path] = []
    for view in _load_views(workspace, experiment, memory_budget_mb):
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
        if view.search is not None:  # figure names ("search-...") never equal a metric's
            svgs.update(search_svgs(view.search))
        html = _render(env, HTML_TEMPLATE, view=view, svgs=svgs)
        md = _render(env, MD_TEMPLATE, view=view)
        dest.mkdir(parents=True, exist_ok=True)
        for name, text in ((HTML_TEMPLATE, html), (MD_TEMPLATE, md)):
            path = dest / name
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)  # a reader never sees half a report
            written.append(path)
    return written
