"""The forgetting section's figure: quality gained (y) against general ability lost (x).

One point per method (its best config) at the means over seeds, with the 95% seed
intervals as error bars; the untrained base model sits at (0, 0) when it is there.
Up and to the left is better: more gained, less forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from ftsweep.report.forgetting import ForgettingRow
from ftsweep.report.stats import Stat
from ftsweep.report.svgchart import Figure, color

FIGURE_KEY = "forgetting-plot"  # its key among the report's SVGs (never a metric name)


def _range(stat: Stat) -> tuple[float, float] | None:
    if stat.mean is None or stat.low is None or stat.high is None:
        return None
    return stat.low, stat.high


def forgetting_svg(rows: Sequence[ForgettingRow], primary: str, id_prefix: str) -> Markup:
    """The scatter of ``rows``; y is the gain over base, or the quality without a base row."""
    with_gain = any(r.gained is not None for r in rows)
    ylabel = f"{primary} gained over base" if with_gain else primary
    fig = Figure(
        f"{ylabel} against forgetting",
        "One point per method (its best configuration) at the means over seeds, with "
        "95% seed intervals as error bars; up and to the left is better.",
    )
    panel = fig.panel("forgetting: probe loss after − before (lower is better)", ylabel)
    panel.vline(0.0)
    panel.hline(0.0)
    for i, r in enumerate(rows):
        y = r.gained if with_gain else r.quality
        if y is None and with_gain and r.verdict.startswith("the reference"):
            y = Stat(0.0, None, r.quality.n)  # the base model: no gain by definition
        if y is None or y.mean is None or r.forgetting.mean is None:
            continue
        point = (r.forgetting.mean, y.mean, _range(r.forgetting), _range(y))
        panel.errorbars([point], color(i), r.label)
    return fig.svg(id_prefix)
