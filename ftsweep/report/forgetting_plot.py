"""The forgetting section's figure: quality gained (y) against general ability lost (x).

One point per method (its best config) at the means over seeds, with the 95% seed
intervals as error bars; the untrained base model sits at (0, 0) when it is there.
Up and to the left is better: more gained, less forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup
from matplotlib.figure import Figure

from ftsweep.report.forgetting import ForgettingRow
from ftsweep.report.plots import render_svg
from ftsweep.report.stats import Stat

FIGURE_KEY = "forgetting-plot"  # its key among the report's SVGs (never a metric name)


def _err(stat: Stat) -> tuple[float, float]:
    if stat.mean is None or stat.low is None or stat.high is None:
        return 0.0, 0.0
    return stat.mean - stat.low, stat.high - stat.mean


def forgetting_svg(rows: Sequence[ForgettingRow], primary: str, id_prefix: str) -> Markup:
    """The scatter of ``rows``; y is the gain over base, or the quality without a base row."""
    with_gain = any(r.gained is not None for r in rows)

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for r in rows:
            y = r.gained if with_gain else r.quality
            if y is None and with_gain and r.verdict.startswith("the reference"):
                y = Stat(0.0, None, r.quality.n)  # the base model: no gain by definition
            if y is None or y.mean is None or r.forgetting.mean is None:
                continue
            (xl, xh), (yl, yh) = _err(r.forgetting), _err(y)
            ax.errorbar(
                [r.forgetting.mean],
                [y.mean],
                xerr=[[xl], [xh]],
                yerr=[[yl], [yh]],
                fmt="o",
                capsize=3,
                label=r.label,
            )
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("forgetting: probe loss after − before (lower is better)")
        ax.set_ylabel(f"{primary} gained over base" if with_gain else primary)
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")

    return render_svg(draw, id_prefix)
