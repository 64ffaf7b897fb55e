"""Small static SVG charts written directly, for the report's figures (no plotting library).

matplotlib took about 2 s of a 1,000-run report (0.5 s to import, 1.5 s to lay out and
write four figures); these charts are a few hundred elements written as text.

Contract of ``Figure.svg`` (the same as ``plots.render_svg``'s, so templates inline both
alike): trusted SVG markup that loads nothing, has no XML prolog, DOCTYPE or comments,
and whose every id carries the caller's prefix, so several SVGs inlined in one page never
share an id. Every piece of text (method names, labels, titles) is XML-escaped, so a
user-chosen name stays text. Each figure carries a ``<title>`` and a ``<desc>`` that
``aria-labelledby`` points at, axis labels, tick labels in the report's number format
(``numbers.fmt_num``) and a legend naming every labelled series.

Usage: make a ``Figure``, add ``Panel``s to it, add series to each panel, call ``svg``.
Axes, scales and ticks are in svgaxis.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from ftsweep.report.svgaxis import Axis, Scale, finite, tick_labels

# matplotlib's "tab10", so colours stay what readers of earlier reports saw
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
FONT = 11.0  # px; tick labels are smaller, annotations smaller still
_CHAR_W = 0.58  # average glyph width in ems of a sans-serif font (for layout only)


def color(i: int) -> str:
    """The ``i``-th colour of the palette (cycling)."""
    return PALETTE[i % len(PALETTE)]


def _f(v: float) -> str:
    """A pixel coordinate: one decimal is finer than any screen shows."""
    return f"{v:.1f}" if v == v else "0"


def text_width(text: str, size: float) -> float:
    """Approximate width in px of ``text`` at font size ``size`` (no font metrics here)."""
    return len(text) * size * _CHAR_W


@dataclass
class _Mark:
    kind: str  # "line", "band", "points", "errorbars", "note", "hline", "vline"
    color: str
    data: tuple
    label: str | None = None
    width: float = 1.5
    radius: float = 0.0
    opacity: float = 1.0


@dataclass
class Panel:
    """One plotting area: two axes and the marks drawn in it, in the order added."""

    x: Axis
    y: Axis
    marks: list[_Mark] = field(default_factory=list)

    def line(
        self,
        xs: Sequence[float],
        ys: Sequence[float | None],
        color: str,
        label: str | None = None,
        width: float = 1.5,
        marker: float = 0.0,
    ) -> None:
        """A polyline through the finite points (broken at missing ones), with optional
        round markers of radius ``marker``."""
        pts = tuple(zip(xs, ys, strict=True))
        self.x.include(*xs)
        self.y.include(*ys)
        self.marks.append(_Mark("line", color, pts, label, width, marker))

    def band(
        self,
        xs: Sequence[float],
        lows: Sequence[float | None],
        highs: Sequence[float | None],
        color: str,
        opacity: float = 0.2,
    ) -> None:
        """A filled region between ``lows`` and ``highs`` (points missing either are left out)."""
        pts = tuple(
            (x, lo, hi)
            for x, lo, hi in zip(xs, lows, highs, strict=True)
            if finite(x) and finite(lo) and finite(hi)
        )
        for x, lo, hi in pts:
            self.x.include(x)
            self.y.include(lo, hi)
        self.marks.append(_Mark("band", color, pts, opacity=opacity))

    def points(
        self,
        xs: Sequence[float | None],
        ys: Sequence[float | None],
        color: str,
        label: str | None = None,
        radius: float = 2.5,
    ) -> None:
        """Round markers at the finite (x, y) pairs."""
        pts = tuple((x, y) for x, y in zip(xs, ys, strict=True) if finite(x) and finite(y))
        for x, y in pts:
            self.x.include(x)
            self.y.include(y)
        self.marks.append(_Mark("points", color, pts, label, radius=radius))

    def errorbars(
        self,
        points: Sequence[
            tuple[float, float, tuple[float, float] | None, tuple[float, float] | None]
        ],
        color: str,
        label: str | None = None,
        radius: float = 3.0,
    ) -> None:
        """Markers with error bars: (x, y, (x_low, x_high) or None, (y_low, y_high) or None)."""
        kept = tuple(p for p in points if finite(p[0]) and finite(p[1]))
        for x, y, xr, yr in kept:
            self.x.include(x, *(xr or ()))
            self.y.include(y, *(yr or ()))
        self.marks.append(_Mark("errorbars", color, kept, label, radius=radius))

    def note(self, x: float | None, y: float | None, text: str, color: str = "#333333") -> None:
        """A small text label just above and right of (x, y)."""
        if finite(x) and finite(y):
            self.marks.append(_Mark("note", color, ((x, y, text),)))

    def hline(self, y: float, color: str = "#808080") -> None:
        self.y.include(y)
        self.marks.append(_Mark("hline", color, (y,), width=0.8))

    def vline(self, x: float, color: str = "#808080") -> None:
        self.x.include(x)
        self.marks.append(_Mark("vline", color, (x,), width=0.8))

    def legend_entries(self) -> list[tuple[str, str, str]]:
        """(label, colour, kind) of every labelled mark, in order, each label once."""
        seen: dict[str, tuple[str, str, str]] = {}
        for m in self.marks:
            if m.label is not None and m.label not in seen:
                seen[m.label] = (m.label, m.color, m.kind)
        return list(seen.values())


def _text(
    x: float, y: float, text: str, size: float, anchor: str = "start", extra: str = ""
) -> str:
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" text-anchor="{anchor}"{extra}>'
        f"{escape(text)}</text>"
    )


@dataclass
class _Box:
    left: float
    top: float
    width: float
    height: float


class Figure:
    """A grid of panels drawn into one SVG of ``width`` x ``height`` px."""

    def __init__(
        self,
        title: str,
        desc: str,
        width: float = 640,
        height: float = 360,
        rows: int = 1,
        cols: int = 1,
    ) -> None:
        self.title, self.desc = title, desc
        self.width, self.height = width, height
        self.rows, self.cols = rows, cols
        self.panels: list[Panel] = []
        self.legend: list[tuple[str, str, str]] | None = None  # None: each panel's own
        self.font = FONT

    def panel(self, xlabel: str, ylabel: str, xlog: bool = False) -> Panel:
        """A new panel, placed in the next cell of the grid (row by row)."""
        if len(self.panels) >= self.rows * self.cols:
            raise ValueError(f"a {self.rows}x{self.cols} figure has no room for another panel")
        p = Panel(Axis(xlabel, xlog), Axis(ylabel))
        self.panels.append(p)
        return p

    def svg(self, id_prefix: str) -> Markup:
        """The figure as inline SVG (see the module's contract)."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", id_prefix):
            raise ValueError(f"id_prefix must be a plain identifier, got {id_prefix!r}")
        w, h = self.width, self.height
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{id_prefix}-svg" width="{_f(w)}" '
            f'height="{_f(h)}" viewBox="0 0 {_f(w)} {_f(h)}" role="img" '
            f'aria-labelledby="{id_prefix}-title {id_prefix}-desc" '
            'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">',
            f'<title id="{id_prefix}-title">{escape(self.title)}</title>',
            f'<desc id="{id_prefix}-desc">{escape(self.desc)}</desc>',
            f'<rect width="{_f(w)}" height="{_f(h)}" fill="#ffffff"/>',
        ]
        small = self.cols > 1 or self.rows > 1
        legend_h = 0.0
        if self.legend is not None and self.legend:
            legend_h = self.font * 1.6
        cell_w, cell_h = w / self.cols, (h - legend_h) / self.rows
        for i, panel in enumerate(self.panels):
            r, c = divmod(i, self.cols)
            box = _Box(c * cell_w, r * cell_h, cell_w, cell_h)
            out.append(self._panel(panel, box, f"{id_prefix}-clip{i}", small))
        if self.legend:
            out.append(self._legend_row(self.legend, h - legend_h, w))
        out.append("</svg>")
        return Markup("\n".join(out))

    def _panel(self, p: Panel, box: _Box, clip_id: str, small: bool) -> str:
        tick = self.font * (0.75 if small else 0.85)
        label = self.font * (0.8 if small else 1.0)
        yticks = p.y.ticks()
        ytexts = tick_labels(yticks)
        gutter = max((text_width(t, tick) for t in ytexts), default=0.0)
        left = box.left + label * 1.6 + gutter + 8
        right = box.left + box.width - 10
        top = box.top + 8
        bottom = box.top + box.height - tick - label * 1.6 - 8
        sx, sy = Scale(p.x, left, right), Scale(p.y, bottom, top)
        out = ['<g class="panel">']
        out.append(
            f'<clipPath id="{clip_id}"><rect x="{_f(left)}" y="{_f(top)}" '
            f'width="{_f(right - left)}" height="{_f(bottom - top)}"/></clipPath>'
        )
        grid, labels = [], []
        for t, text in zip(yticks, ytexts, strict=True):
            y = sy(t)
            grid.append(f"M{_f(left)} {_f(y)}H{_f(right)}")
            labels.append(_text(left - 4, y + tick * 0.35, text, tick, "end"))
        xticks = p.x.ticks()
        for t, text in zip(xticks, tick_labels(xticks), strict=True):
            x = sx(t)
            grid.append(f"M{_f(x)} {_f(top)}V{_f(bottom)}")
            labels.append(_text(x, bottom + tick + 3, text, tick, "middle"))
        out.append(f'<path d="{"".join(grid)}" stroke="#b0b0b0" stroke-opacity="0.3" fill="none"/>')
        out += labels
        out.append(
            f'<rect x="{_f(left)}" y="{_f(top)}" width="{_f(right - left)}" '
            f'height="{_f(bottom - top)}" fill="none" stroke="#000000" stroke-width="0.8"/>'
        )
        out.append(_text((left + right) / 2, box.top + box.height - 6, p.x.label, label, "middle"))
        ly = (top + bottom) / 2
        ylx = box.left + label * 1.1
        out.append(
            _text(
                ylx, ly, p.y.label, label, "middle", f' transform="rotate(-90 {_f(ylx)} {_f(ly)})"'
            )
        )
        out.append(f'<g clip-path="url(#{clip_id})">')
        out += [_draw(m, sx, sy, left, right, top, bottom, self.font) for m in p.marks]
        out.append("</g>")
        if self.legend is None:
            entries = p.legend_entries()
            if entries:
                area = (left, top, right, bottom)
                out.append(self._legend_box(entries, area, _pixels(p.marks, sx, sy)))
        out.append("</g>")
        return "\n".join(out)

    def _legend_box(
        self,
        entries: list[tuple[str, str, str]],
        area: tuple[float, float, float, float],
        points: list[tuple[float, float]],
    ) -> str:
        """The legend in the corner of ``area`` that covers the fewest data ``points``
        (top right on a tie), as matplotlib's loc="best" does."""
        size = self.font * 0.85
        line = size * 1.4
        width = max(text_width(e[0], size) for e in entries) + 30
        height = line * len(entries) + 6
        left, top, right, bottom = area
        corners = [
            (right - width - 6, top + 6),
            (left + 6, top + 6),
            (right - width - 6, bottom - height - 6),
            (left + 6, bottom - height - 6),
        ]

        def covered(corner: tuple[float, float]) -> int:
            x, y = corner
            return sum(1 for px, py in points if x <= px <= x + width and y <= py <= y + height)

        x0, y0 = min(corners, key=covered)  # min keeps the first of equals: top right
        out = [
            f'<g class="legend"><rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(width)}" '
            f'height="{_f(height)}" fill="#ffffff" fill-opacity="0.8" stroke="#cccccc"/>'
        ]
        for i, (text, col, kind) in enumerate(entries):
            y = y0 + 3 + line * (i + 0.5)
            out.append(_swatch(x0 + 6, y, col, kind))
            out.append(_text(x0 + 26, y + size * 0.35, text, size))
        out.append("</g>")
        return "\n".join(out)

    def _legend_row(self, entries: list[tuple[str, str, str]], top: float, width: float) -> str:
        size = self.font * 0.85
        total = sum(text_width(e[0], size) + 34 for e in entries)
        x = max(4.0, width - total - 8)
        y = top + self.font * 0.8
        out = ['<g class="legend">']
        for text, col, kind in entries:
            out.append(_swatch(x, y, col, kind))
            out.append(_text(x + 20, y + size * 0.35, text, size))
            x += text_width(text, size) + 34
        out.append("</g>")
        return "\n".join(out)


def _pixels(marks: list[_Mark], sx: Scale, sy: Scale) -> list[tuple[float, float]]:
    """Pixel positions of the data points of ``marks`` (bands by their edges, error bars
    by their ends)."""
    out = []
    for m in marks:
        if m.kind in ("line", "points"):
            pairs = [(d[0], d[1]) for d in m.data]
        elif m.kind == "errorbars":  # the centre and the bars' ends
            pairs = []
            for x, y, xr, yr in m.data:
                pairs += [(x, y), *((v, y) for v in xr or ()), *((x, v) for v in yr or ())]
        elif m.kind == "band":
            pairs = [(x, y) for x, lo, hi in m.data for y in (lo, hi)]
        else:
            continue
        out += [(sx(x), sy(y)) for x, y in pairs if sx.ok(x) and sy.ok(y)]
    return out


def _swatch(x: float, y: float, col: str, kind: str) -> str:
    if kind in ("points", "errorbars"):
        return f'<circle cx="{_f(x + 7)}" cy="{_f(y)}" r="3.5" fill="{col}"/>'
    return f'<path d="M{_f(x)} {_f(y)}h14" stroke="{col}" stroke-width="2" fill="none"/>'


def _polyline(pts: list[tuple[float, float]]) -> str:
    return "M" + "L".join(f"{_f(x)} {_f(y)}" for x, y in pts)


def _draw(
    m: _Mark,
    sx: Scale,
    sy: Scale,
    left: float,
    right: float,
    top: float,
    bottom: float,
    font: float,
) -> str:
    """One mark as SVG elements, in pixel coordinates."""
    if m.kind == "line":
        runs: list[list[tuple[float, float]]] = [[]]
        for x, y in m.data:
            if sx.ok(x) and sy.ok(y):
                runs[-1].append((sx(x), sy(y)))
            elif runs[-1]:
                runs.append([])
        d = "".join(_polyline(r) for r in runs if r)
        out = []
        if d:
            out.append(
                f'<path d="{d}" stroke="{m.color}" stroke-width="{_f(m.width)}" fill="none" '
                'stroke-linejoin="round"/>'
            )
        if m.radius:
            out.append(_dots([p for r in runs for p in r], m.radius, m.color))
        return "\n".join(out)
    if m.kind == "band":
        pts = [(x, lo, hi) for x, lo, hi in m.data if sx.ok(x) and sy.ok(lo) and sy.ok(hi)]
        if not pts:
            return ""
        upper = [(sx(x), sy(hi)) for x, _, hi in pts]
        lower = [(sx(x), sy(lo)) for x, lo, _ in reversed(pts)]
        return (
            f'<path d="{_polyline(upper + lower)}Z" fill="{m.color}" '
            f'fill-opacity="{m.opacity}" stroke="none"/>'
        )
    if m.kind == "points":
        dots = [(sx(x), sy(y)) for x, y in m.data if sx.ok(x) and sy.ok(y)]
        return _dots(dots, m.radius, m.color)
    if m.kind == "errorbars":
        bars, centres = [], []
        cap = 2.5
        for x, y, xr, yr in m.data:
            if not (sx.ok(x) and sy.ok(y)):
                continue
            px, py = sx(x), sy(y)
            centres.append((px, py))
            if xr is not None and sx.ok(xr[0]) and sx.ok(xr[1]):
                a, b = sx(xr[0]), sx(xr[1])
                bars.append(f"M{_f(a)} {_f(py)}H{_f(b)}M{_f(a)} {_f(py - cap)}v{_f(2 * cap)}")
                bars.append(f"M{_f(b)} {_f(py - cap)}v{_f(2 * cap)}")
            if yr is not None and sy.ok(yr[0]) and sy.ok(yr[1]):
                a, b = sy(yr[0]), sy(yr[1])
                bars.append(f"M{_f(px)} {_f(a)}V{_f(b)}M{_f(px - cap)} {_f(a)}h{_f(2 * cap)}")
                bars.append(f"M{_f(px - cap)} {_f(b)}h{_f(2 * cap)}")
        out = []
        if bars:
            out.append(
                f'<path d="{"".join(bars)}" stroke="{m.color}" stroke-width="0.9" fill="none"/>'
            )
        out.append(_dots(centres, m.radius, m.color))
        return "\n".join(out)
    if m.kind == "note":
        x, y, text = m.data[0]
        if not (sx.ok(x) and sy.ok(y)):
            return ""
        return _text(sx(x) + 3, sy(y) - 3, text, font * 0.6, extra=f' fill="{m.color}"')
    if m.kind == "hline" and sy.ok(m.data[0]):
        y = sy(m.data[0])
        return f'<path d="M{_f(left)} {_f(y)}H{_f(right)}" stroke="{m.color}" stroke-width="0.8"/>'
    if m.kind == "vline" and sx.ok(m.data[0]):
        x = sx(m.data[0])
        return f'<path d="M{_f(x)} {_f(top)}V{_f(bottom)}" stroke="{m.color}" stroke-width="0.8"/>'
    return ""


def _dots(pts: Sequence[tuple[float, float]], radius: float, col: str) -> str:
    """Many round markers as one path (a zero-length segment with a round cap each)."""
    if not pts:
        return ""
    d = "".join(f"M{_f(x)} {_f(y)}h0" for x, y in pts)
    return (
        f'<path d="{d}" stroke="{col}" stroke-width="{_f(2 * radius)}" '
        'stroke-linecap="round" fill="none"/>'
    )
