"""The report's figures written as SVG text (report/svgchart.py, report/plots.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from ftsweep.report.pareto import ParetoAxis, ParetoPoint
from ftsweep.report.plots import curve_svg, lr_svg, pareto_svg
from ftsweep.report.sensitivity import LrCurve, LrPoint
from ftsweep.report.stats import Stat
from ftsweep.report.svgaxis import log_ticks, nice_ticks, tick_labels
from ftsweep.report.svgchart import Figure
from ftsweep.report.viewmodel import CurveSeries, CurveSet

EVIL = '<script>alert(1)</script> & "-->'
NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


def test_ticks_are_round_and_labelled_in_the_report_format() -> None:
    assert nice_ticks(0.0, 1.0) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert tick_labels(nice_ticks(0.0, 1.0)) == ["0", "0.2", "0.4", "0.6", "0.8", "1"]
    assert tick_labels(nice_ticks(1000, 9000)) == ["2,000", "4,000", "6,000", "8,000"]
    # a narrow range gets the digits it needs, not 3 significant ones that repeat
    labels = tick_labels(nice_ticks(0.1741, 0.1749))
    assert len(set(labels)) == len(labels) and labels[0] == "0.1742"
    assert log_ticks(1e-5, 1e-3) == pytest.approx([1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3])
    assert log_ticks(1e-6, 1e-1) == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert tick_labels([1e-5, 1e-4]) == ["1×10⁻⁵", "1×10⁻⁴"]  # never "1e-05"


def test_text_is_escaped_ids_prefixed_and_the_figure_described() -> None:
    fig = Figure(f"title {EVIL}", f"desc {EVIL}")
    panel = fig.panel(f"x {EVIL}", f"y {EVIL}")
    panel.line([1, 2, 3], [1.0, float("nan"), 2.0], "#000000", label=EVIL, marker=2)
    panel.note(2, 1.5, EVIL)
    svg = str(fig.svg("fig7"))
    assert "<script" not in svg and "<!--" not in svg and "<?xml" not in svg
    root = _parse(svg)
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert ids and all(i.startswith("fig7-") for i in ids)
    assert re.findall(r"url\(#([^)]*)\)", svg) == ["fig7-clip0"]
    assert root.get("role") == "img" and root.get("aria-labelledby") == "fig7-title fig7-desc"
    assert root.find(f"{NS}title").text == f"title {EVIL}"  # type: ignore[union-attr]
    texts = _texts(root)
    assert f"x {EVIL}" in texts and f"y {EVIL}" in texts and texts.count(EVIL) == 2  # legend, note
    # the NaN breaks the line: two one-point runs, no segment through the gap
    path = next(p.get("d") for p in root.iter(f"{NS}path") if p.get("stroke-linejoin"))
    assert path is not None and path.count("M") == 2 and "L" not in path
    with pytest.raises(ValueError, match="id_prefix"):
        fig.svg('x" onload="alert(1)')


def _stat(mean: float, half: float | None = None) -> Stat:
    if half is None:
        return Stat(mean, None, 1)
    return Stat(mean, half, 3, mean - half, mean + half)


def test_report_figures_keep_their_content() -> None:
    curves = CurveSet(
        "loss",
        (
            CurveSeries("lora", (1, 2, 3), (1.0, 0.8, 0.5), (0.9, 0.7, 0.4), (1.1, 0.9, 0.6)),
            CurveSeries("full", (1, 2, 3), (1.2, 0.7, 0.3)),
        ),
    )
    root = _parse(str(curve_svg(curves, "c")))
    texts = _texts(root)
    assert {"step", "loss", "lora", "full"} <= set(texts)  # axis labels and legend
    assert (
        len([p for p in root.iter(f"{NS}path") if p.get("fill-opacity") == "0.2"]) == 1
    )  # one band

    def point(label: str, x: float, y: float, front: bool) -> ParetoPoint:
        return ParetoPoint(label, "r=8", _stat(x, 1.0), _stat(y, 0.01), front, ("id",))

    axis = ParetoAxis(
        "peak_memory_mb",
        "peak memory (MB)",
        "device peak",
        False,
        (
            point("lora", 100, 0.8, True),
            point("full", 400, 0.9, True),
            point("ia3", 500, 0.7, False),
        ),
    )
    pareto = _parse(str(pareto_svg((axis,), "exact_match", "pareto")))
    texts = _texts(pareto)
    assert "peak memory (MB), lower is better" in texts and "exact_match" in texts
    assert {"dominated", "on the front (95% seed intervals)", "lora", "full"} <= set(texts)
    assert "ia3" not in texts  # only the front's members are named on the plot

    lr = LrCurve("lora", (LrPoint(1e-4, _stat(0.5, 0.05), "a"), LrPoint(1e-3, _stat(0.7), "b")))
    one = LrCurve("full", (LrPoint(3e-4, _stat(0.6, 0.02), "c"),))
    texts = _texts(_parse(str(lr_svg((lr, one), "exact_match", "lr"))))
    assert {"learning rate", "exact_match", "lora", "full"} <= set(texts)
    assert any("10⁻⁴" in t for t in texts)  # log axis labelled in the report's format


def test_the_legend_goes_where_it_hides_the_fewest_points() -> None:
    def legend_x(xs: list[float], ys: list[float]) -> float:
        fig = Figure("t", "d")
        fig.panel("x", "y").points(xs, ys, "#000000", "series")
        root = _parse(str(fig.svg("l")))
        (box,) = [g for g in root.iter(f"{NS}g") if g.get("class") == "legend"]
        return float(box.find(f"{NS}rect").get("x"))  # type: ignore[union-attr,arg-type]

    crowded_top_right = [9.0 + 0.1 * i for i in range(10)]
    assert legend_x([0.0, *crowded_top_right], [0.0, *crowded_top_right]) < 320  # moved left
    assert legend_x([0.0, 1.0], [0.0, 0.0]) > 320  # top right when it covers nothing there
