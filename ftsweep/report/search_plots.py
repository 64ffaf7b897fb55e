"""Static SVG figures of a search's report sections (drawn through ``plots.render_svg``,
so they keep its contract: no text nodes, no comments, prefixed ids).

``search_svgs`` returns every figure of a ``SearchView`` keyed by the ``figure`` name its
view-model carries, which is also the id prefix, so templates look figures up by name.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib
from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ftsweep.report.plots import render_svg
from ftsweep.report.search_shapes import Parallel, Pareto
from ftsweep.report.search_view import BestSoFar, History, SearchView

_PRUNED_GREY = "#bbbbbb"


def _colors(methods: list[str]) -> dict[str, Any]:
    """The same colour for a method in every figure of the report."""
    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(sorted(set(methods)))}


def history_svg(history: History, colors: dict[str, Any]) -> Markup:
    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for s in history.series:
            ax.scatter(s.numbers, s.values, s=14, color=colors[s.method], label=s.method)
            if s.best_numbers:
                ax.step(
                    s.best_numbers,
                    s.best_values,
                    where="post",
                    color=colors[s.method],
                    linewidth=1.2,
                    alpha=0.8,
                )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("trial number (in its study)")
        ax.set_ylabel(history.metric)
        ax.grid(True, alpha=0.3)
        if history.series:
            ax.legend(fontsize="small")

    return render_svg(draw, history.figure)


def best_svg(best: BestSoFar, colors: dict[str, Any]) -> Markup:
    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for c in best.curves:
            ax.step(
                c.trials,
                c.best,
                where="post",
                marker="o",
                markersize=3,
                color=colors[c.method],
                label=c.method,
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("trials of the method (0 = warm start)")
        ax.set_ylabel(f"best {best.metric} so far")
        ax.grid(True, alpha=0.3)
        if best.curves:
            ax.legend(fontsize="small")

    return render_svg(draw, best.figure)


def parallel_svg(par: Parallel) -> Markup:
    values = [line.value for line in par.lines if line.value is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = 0.0 if hi > lo else max(abs(lo), 1.0) * 0.5  # one value: centred on the scale
    norm = matplotlib.colors.Normalize(lo - pad, hi + pad)
    cmap = matplotlib.colormaps["viridis"]
    width = max(4.0, 1.6 * len(par.axes) + 2.0)

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        xs = list(range(len(par.axes)))
        # pruned trials first, in grey, so complete ones are drawn over them
        for line in sorted(par.lines, key=lambda ln: ln.value is not None):
            ys = [math.nan if c is None else c for c in line.coords]
            if line.value is None:
                ax.plot(xs, ys, color=_PRUNED_GREY, linestyle="--", linewidth=1.0, marker=".")
            else:
                ax.plot(
                    xs, ys, color=cmap(norm(line.value)), linewidth=1.6, marker="o", markersize=3
                )
        for x, axis in zip(xs, par.axes, strict=True):
            ax.axvline(x, color="#444444", linewidth=0.8)
            for pos, label in axis.ticks:
                ax.annotate(
                    label,
                    (x, pos),
                    xytext=(3, 0),
                    textcoords="offset points",
                    fontsize="x-small",
                    va="center",
                )
        ax.set_xticks(
            xs, [f"{a.name} (log)" if a.log else a.name for a in par.axes], fontsize="small"
        )
        ax.set_yticks([])
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlim(-0.2, max(0.8, len(xs) - 0.2))
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax, label=par.metric)

    return render_svg(draw, par.figure, figsize=(width, 3.6))


def pareto_svg(pareto: Pareto, colors: dict[str, Any]) -> Markup:
    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for method in sorted({p.method for p in pareto.points}):
            pts = [p for p in pareto.points if p.method == method]
            dominated = [p for p in pts if not p.front]
            front = [p for p in pts if p.front]
            ax.scatter(
                [p.values[0] for p in dominated],
                [p.values[1] for p in dominated],
                s=14,
                color=colors[method],
                alpha=0.35,
            )
            ax.scatter(
                [p.values[0] for p in front],
                [p.values[1] for p in front],
                s=40,
                color=colors[method],
                edgecolors="black",
                linewidths=1.0,
                label=f"{method} (front)" if front else method,
            )
        line = sorted((p.values[0], p.values[1]) for p in pareto.points if p.front)
        if len(line) > 1:
            ax.plot(
                [f[0] for f in line],
                [f[1] for f in line],
                color="black",
                linewidth=0.8,
                linestyle=":",
            )
        ax.set_xlabel(f"{pareto.metrics[0]} ({pareto.directions[0]})")
        ax.set_ylabel(f"{pareto.metrics[1]} ({pareto.directions[1]})")
        ax.grid(True, alpha=0.3)
        if pareto.points:
            ax.legend(fontsize="small")

    return render_svg(draw, pareto.figure)


def search_svgs(view: SearchView) -> dict[str, Markup]:
    """Every figure of the search sections, by figure name (empty views draw nothing)."""
    colors = _colors([t.method for t in view.trials])
    svgs = {}
    if any(s.numbers for s in view.history.series):
        svgs[view.history.figure] = history_svg(view.history, colors)
    if view.best.curves:
        svgs[view.best.figure] = best_svg(view.best, colors)
    for par in view.parallel:
        if par.axes and par.lines:
            svgs[par.figure] = parallel_svg(par)
    if view.pareto.points:
        svgs[view.pareto.figure] = pareto_svg(view.pareto, colors)
    return svgs
