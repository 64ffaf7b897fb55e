"""The report's aggregate figures, as inline SVG.

The curve, Pareto and learning-rate figures (and forgetting_plot.py's) are written by
``svgchart`` directly: a 1,000-run report drew them through matplotlib in ~2 s
(import included); written as text they take milliseconds. The search sections'
figures (search_plots.py) still go through matplotlib via ``render_svg``, which is
imported only when a report has a search section.

Contract of every figure here (``svgchart.Figure.svg``) and of ``render_svg``: returns
trusted SVG markup that loads nothing, contains no XML prolog, DOCTYPE or comments, and
whose every id and id reference carries a caller-chosen prefix, so several SVGs inlined
into one page never share an id. svgchart escapes every text it writes; ``render_svg``
draws text as glyph outlines (matplotlib writes each text string into a comment, and a
user-chosen method name must not be able to close it) and drops the comments.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from markupsafe import Markup

from ftsweep.report.pareto import ParetoAxis
from ftsweep.report.sensitivity import LrCurve
from ftsweep.report.stats import Stat
from ftsweep.report.svgchart import Figure, Panel, color
from ftsweep.report.viewmodel import CurveSet

if TYPE_CHECKING:  # matplotlib is imported only by render_svg (search figures)
    from matplotlib.figure import Figure as MplFigure

_PROLOG = re.compile(r"<\?xml.*?\?>|<!DOCTYPE.*?>|<!--.*?-->", re.DOTALL)
_ID_REF = re.compile(r'(\bid="|href="#|url\(#)')
_FRONT = "#1a7f37"
_DOMINATED = "#999999"


def render_svg(
    draw: Callable[[MplFigure], None],
    id_prefix: str,
    figsize: tuple[float, float] = (6.4, 3.6),
    layout: Literal["constrained"] | None = "constrained",
) -> Markup:
    """Call ``draw`` on a fresh matplotlib figure and return it as inline SVG (see the
    contract above)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

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
        fig = MplFigure(figsize=figsize, layout=layout)
        FigureCanvasAgg(fig)
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = _PROLOG.sub("", buf.getvalue()).strip()
    return Markup(_ID_REF.sub(lambda m: m.group(1) + id_prefix + "-", svg))


def curve_svg(curves: CurveSet, id_prefix: str) -> Markup:
    """One line per method (mean over seeds of its best config) of ``curves.metric``,
    with a band from the lowest to the highest seed where there are several."""
    fig = Figure(
        f"{curves.metric} by training step",
        f"One line per method: the mean over the seeds of its best configuration; "
        f"the band runs from the lowest to the highest seed. Methods: "
        f"{', '.join(s.method for s in curves.series) or 'none'}.",
    )
    panel = fig.panel("step", curves.metric)
    for i, series in enumerate(curves.series):
        if series.low:
            panel.band(series.steps, series.low, series.high, color(i))
    for i, series in enumerate(curves.series):
        panel.line(series.steps, series.values, color(i), series.method, marker=1.25)
    return fig.svg(id_prefix)


def _m(stat: Stat) -> float | None:
    return stat.mean


def _range(stat: Stat) -> tuple[float, float] | None:
    """A seed interval to draw as an error bar; None where there is none."""
    if stat.mean is None or stat.low is None or stat.high is None:
        return None
    return stat.low, stat.high


def _log_wanted(values: list[float | None]) -> bool:
    """A log axis where positive values span more than a factor of 100."""
    xs = [v for v in values if v]
    return bool(xs) and min(xs) > 0 and max(xs) / min(xs) > 100


def _pareto_panel(panel: Panel, axis: ParetoAxis) -> None:
    # dominated points are plain markers; the front's members carry their seed
    # intervals on both axes, joined by a line in cost order
    dominated = [p for p in axis.points if not p.on_front]
    if dominated:
        panel.points([_m(p.x) for p in dominated], [_m(p.y) for p in dominated], _DOMINATED,
                     "dominated", radius=2.0)  # fmt: skip
    front = sorted(
        (p for p in axis.front if p.x.mean is not None and p.y.mean is not None),
        key=lambda p: p.x.mean or 0.0,
    )
    if len(front) > 1:
        panel.line([p.x.mean or 0.0 for p in front], [p.y.mean for p in front], _FRONT, width=1)
    if axis.front:
        panel.errorbars(
            [(p.x.mean, p.y.mean, _range(p.x), _range(p.y)) for p in front],  # type: ignore[misc]
            _FRONT,
            "on the front (95% seed intervals)",
        )
    for p in front:
        panel.note(p.x.mean, p.y.mean, p.label)


def pareto_svg(axes: tuple[ParetoAxis, ...], metric: str, id_prefix: str) -> Markup:
    """One panel per cost axis: every trained config as a point; the front's members in
    green, joined by a line, with their 95% seed intervals as error bars on both axes."""
    shown = [a for a in axes if a.points]
    fig = Figure(
        f"Pareto fronts: {metric} against cost",
        f"One panel per cost ({', '.join(a.label for a in shown)}): every trained "
        f"configuration as a grey point, the front's members in green, joined, with "
        f"their 95% seed intervals as error bars.",
        width=1000,
        height=600,
        rows=2,
        cols=3,
    )
    for axis in shown[: fig.rows * fig.cols]:
        better = "higher" if axis.higher_is_better else "lower"
        xlog = _log_wanted([p.x.mean for p in axis.points])
        _pareto_panel(fig.panel(f"{axis.label}, {better} is better", metric, xlog), axis)
    fig.legend = [(label, col, kind) for label, col, kind in _pareto_legend(fig.panels)]
    return fig.svg(id_prefix)


def _pareto_legend(panels: list[Panel]) -> list[tuple[str, str, str]]:
    seen: dict[str, tuple[str, str, str]] = {}
    for panel in panels:
        for entry in panel.legend_entries():
            seen.setdefault(entry[0], entry)
    return list(seen.values())


def lr_svg(curves: tuple[LrCurve, ...], metric: str, id_prefix: str) -> Markup:
    """The primary metric against the learning rate (log scale), one line per method,
    with its 95% seed interval as a band (an error bar where a method has one rate)."""
    fig = Figure(
        f"{metric} against learning rate",
        f"One line per method through its best configuration at each learning rate "
        f"(log scale), with the 95% seed interval as a band. Methods: "
        f"{', '.join(c.method for c in curves) or 'none'}.",
    )
    panel = fig.panel("learning rate", metric, xlog=True)
    for i, curve in enumerate(curves):
        lrs = [p.lr for p in curve.points]
        means = [p.stat.mean for p in curve.points]
        if any(p.stat.low is not None for p in curve.points):
            if len(lrs) > 1:
                lows = [m if p.stat.low is None else p.stat.low for p, m in zip(curve.points, means, strict=True)]  # fmt: skip
                highs = [m if p.stat.high is None else p.stat.high for p, m in zip(curve.points, means, strict=True)]  # fmt: skip
                panel.band(lrs, lows, highs, color(i))
            else:
                panel.errorbars(
                    [(lrs[0], means[0], None, _range(curve.points[0].stat))],  # type: ignore[list-item]
                    color(i),
                )
        panel.line(lrs, means, color(i), curve.method, marker=3)
    return fig.svg(id_prefix)
