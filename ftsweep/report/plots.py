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

import matplotlib
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ftsweep.report.viewmodel import CurveSet

_PROLOG = re.compile(r"<\?xml.*?\?>|<!DOCTYPE.*?>|<!--.*?-->", re.DOTALL)
_ID_REF = re.compile(r'(\bid="|href="#|url\(#)')


def render_svg(
    draw: Callable[[Figure], None], id_prefix: str, figsize: tuple[float, float] = (6.4, 3.6)
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
        fig = Figure(figsize=figsize, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = _PROLOG.sub("", buf.getvalue()).strip()
    return Markup(_ID_REF.sub(lambda m: m.group(1) + id_prefix + "-", svg))


def curve_svg(curves: CurveSet, id_prefix: str) -> Markup:
    """One line per method (mean over seeds of its best config) of ``curves.metric``."""

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for series in curves.series:
            ax.plot(
                series.steps,
                series.values,
                marker="o",
                markersize=2.5,
                linewidth=1.5,
                label=series.method,
            )
        ax.set_xlabel("step")
        ax.set_ylabel(curves.metric)
        ax.grid(True, alpha=0.3)
        if curves.series:
            ax.legend(fontsize="small")

    return render_svg(draw, id_prefix)
