"""Static SVG plots, made to be inlined into a self-contained HTML.

Contract of ``render_svg`` (and so of every plot drawn through it): returns trusted SVG
markup that loads nothing, contains no XML prolog, DOCTYPE or comments (matplotlib writes each text string into a comment,
and a user-chosen method name must not be able to close it), and whose every id and
id reference carries a caller-chosen prefix, so several SVGs inlined into one page
never share an id (matplotlib reuses ids such as glyph names across figures).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Literal

import matplotlib
from markupsafe import Markup
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from ftsweep.report.numbers import fmt_num
from ftsweep.report.pareto import ParetoAxis, ParetoPoint
from ftsweep.report.sensitivity import LrCurve
from ftsweep.report.stats import Stat
from ftsweep.report.viewmodel import CurveSet

_PROLOG = re.compile(r"<\?xml.*?\?>|<!DOCTYPE.*?>|<!--.*?-->", re.DOTALL)
_ID_REF = re.compile(r'(\bid="|href="#|url\(#)')


def render_svg(
    draw: Callable[[Figure], None],
    id_prefix: str,
    figsize: tuple[float, float] = (6.4, 3.6),
    layout: Literal["constrained"] | None = "constrained",
) -> Markup:
    """Call ``draw`` on a fresh figure and return it as inline SVG (see the contract above)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", id_prefix):
        raise ValueError(f"id_prefix must be a plain identifier, got {id_prefix!r}")
    # fonttype "path": text becomes glyph outlines, so a user-chosen name is never SVG
    # text; a fixed hashsalt keeps ids (and so the HTML) identical across renders;
    # parse_math off: a "$" in a user-chosen name is text, not a (failing) formula.
    with matplotlib.rc_context(
        {
            "svg.fonttype": "path",
            "svg.hashsalt": "ftsweep",
            "svg.image_inline": True,
            "text.parse_math": False,
        }
    ):
        # A bare Figure on an Agg canvas, not pyplot: no global figure registry and no
        # display backend, whatever backend the rest of the process has chosen.
        # layout None: the caller places the axes (constrained layout costs ~1 s a panel)
        fig = Figure(figsize=figsize, layout=layout)
        FigureCanvasAgg(fig)
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = _PROLOG.sub("", buf.getvalue()).strip()
    return Markup(_ID_REF.sub(lambda m: m.group(1) + id_prefix + "-", svg))


def curve_svg(curves: CurveSet, id_prefix: str) -> Markup:
    """One line per method (mean over seeds of its best config) of ``curves.metric``,
    with a band from the lowest to the highest seed where there are several."""

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for series in curves.series:
            (line,) = ax.plot(
                series.steps,
                series.values,
                marker="o",
                markersize=2.5,
                linewidth=1.5,
                label=series.method,
            )
            if series.low:
                ax.fill_between(
                    series.steps, series.low, series.high, color=line.get_color(), alpha=0.2
                )
        ax.set_xlabel("step")
        ax.set_ylabel(curves.metric)
        ax.grid(True, alpha=0.3)
        if curves.series:
            ax.legend(fontsize="small")

    return render_svg(draw, id_prefix)


def _log_x(ax: Axes) -> None:
    """A log x axis labelled in the report's number format: matplotlib's default labels
    are math text ("$10^{-3}$"), which the report's parse_math=False prints raw."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_num(float(v))))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _m(stat: Stat) -> float:
    """A mean to plot (NaN, which matplotlib skips, where there is none)."""
    return float("nan") if stat.mean is None else stat.mean


def _err(stats: list[Stat]) -> list[list[float]]:
    """Matplotlib's asymmetric error bars from seed intervals (0 where there is none)."""
    lows = [s.mean - s.low if s.low is not None and s.mean is not None else 0.0 for s in stats]
    highs = [s.high - s.mean if s.high is not None and s.mean is not None else 0.0 for s in stats]
    return [lows, highs]


def _pareto_panel(ax: Axes, axis: ParetoAxis, metric: str) -> None:
    # dominated points are plain markers (hundreds of error bars cost seconds of SVG);
    # the front's members carry their seed intervals on both axes
    dominated = [p for p in axis.points if not p.on_front]
    if dominated:
        ax.scatter(
            [_m(p.x) for p in dominated],
            [_m(p.y) for p in dominated],
            s=10,
            color="#999999",
            label="dominated",
        )
    front_pts = list(axis.front)
    if front_pts:
        ax.errorbar(
            [_m(p.x) for p in front_pts],
            [_m(p.y) for p in front_pts],
            xerr=_err([p.x for p in front_pts]),
            yerr=_err([p.y for p in front_pts]),
            fmt="o",
            markersize=4,
            elinewidth=0.8,
            capsize=2,
            color="#1a7f37",
            label="on the front (95% seed intervals)",
        )
    front = sorted(axis.front, key=_x)
    if len(front) > 1:
        ax.plot([_m(p.x) for p in front], [_m(p.y) for p in front], color="#1a7f37", lw=1)
    for p in front:
        ax.annotate(
            p.label, (_m(p.x), _m(p.y)), fontsize=6, xytext=(3, 3), textcoords="offset points"
        )
    xs = [p.x.mean for p in axis.points if p.x.mean]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 100:
        _log_x(ax)
    else:  # the report's format, not matplotlib's "1e6" offset
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_num(float(v))))
    better = "higher" if axis.higher_is_better else "lower"
    ax.set_xlabel(f"{axis.label}, {better} is better", fontsize=7)
    ax.set_ylabel(metric, fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(True, alpha=0.3)


def _x(point: ParetoPoint) -> float:
    return _m(point.x)


def pareto_svg(axes: tuple[ParetoAxis, ...], metric: str, id_prefix: str) -> Markup:
    """One panel per cost axis: every trained config as a point; the front's members in
    green, joined by a line, with their 95% seed intervals as error bars on both axes."""
    shown = [a for a in axes if a.points]

    def draw(fig: Figure) -> None:
        grid = fig.subplots(2, 3, squeeze=False)
        fig.subplots_adjust(left=0.07, right=0.98, top=0.97, bottom=0.09, wspace=0.3, hspace=0.35)
        cells = [ax for row in grid for ax in row]
        for ax, axis in zip(cells, shown, strict=False):
            _pareto_panel(ax, axis, metric)
        for ax in cells[len(shown) :]:
            ax.set_axis_off()
        if shown:
            handles, labels = cells[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="lower right", fontsize="small")

    return render_svg(draw, id_prefix, figsize=(10.0, 6.0), layout=None)


def lr_svg(curves: tuple[LrCurve, ...], metric: str, id_prefix: str) -> Markup:
    """The primary metric against the learning rate (log scale), one line per method,
    with its 95% seed interval as a band (an error bar where a method has one rate)."""

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for curve in curves:
            lrs = [p.lr for p in curve.points]
            means = [_m(p.stat) for p in curve.points]
            (line,) = ax.plot(lrs, means, marker="o", markersize=3, label=curve.method)
            if not any(p.stat.low is not None for p in curve.points):
                continue
            if len(lrs) > 1:
                lows = [
                    m if p.stat.low is None else p.stat.low
                    for p, m in zip(curve.points, means, strict=True)
                ]
                highs = [
                    m if p.stat.high is None else p.stat.high
                    for p, m in zip(curve.points, means, strict=True)
                ]
                ax.fill_between(lrs, lows, highs, color=line.get_color(), alpha=0.2)
            else:
                ax.errorbar(
                    lrs,
                    means,
                    yerr=_err([p.stat for p in curve.points]),
                    color=line.get_color(),
                    capsize=3,
                )
        _log_x(ax)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        if curves:
            ax.legend(fontsize="small")

    return render_svg(draw, id_prefix)
