"""Axes of the report's SVG charts (svgchart.py): data ranges, scales and ticks.

Ticks are round numbers (1, 2, 2.5, 5 × 10^k apart; powers of ten, or 1-2-5 steps, on a
log axis) labelled in the report's number format (``numbers.fmt_num``) with as many
digits as their spacing needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ftsweep.report.numbers import fmt_num

PAD = 0.05  # data margin on each side of a linear axis, as a fraction of its span


def finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 × 10^k apart) covering [lo, hi], about ``target``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        value = k * step
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        k += 1
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten in [lo, hi] (both > 0); 1-2-5 steps where the span is under 2 decades."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mantissas = (1.0,) if math.log10(hi / lo) > 2 else (1.0, 2.0, 5.0)
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas]
    inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return inside or [lo, hi]


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Tick labels in the report's number format, with as many significant digits as the
    spacing needs (never fewer than one) and no trailing zeros: 0, 0.2, 0.4; 1,000, 2,000."""
    finite = [t for t in ticks if math.isfinite(t)]
    if not finite:
        return ["" for _ in ticks]
    top = max(abs(t) for t in finite) or 1.0
    gaps = [b - a for a, b in zip(finite, finite[1:], strict=False) if b > a]
    # on a log axis the smallest tick sets the precision; on a linear one, the spacing
    step = min([*gaps, *(abs(t) for t in finite if t)]) if gaps else top
    digits = max(1, math.floor(math.log10(top)) - math.floor(math.log10(step)) + 1)
    return [_trim(fmt_num(float(t), digits)) for t in ticks]


def _trim(text: str) -> str:
    """ "1.50" -> "1.5", "2.00×10⁻⁵" -> "2×10⁻⁵", "1,000" unchanged."""
    head, sep, tail = text.partition("×")
    if "." in head:
        head = head.rstrip("0").rstrip(".")
    return head + sep + tail


@dataclass
class Axis:
    """One axis of a panel: its data range (grown by every series added) and scale."""

    label: str
    log: bool = False
    lo: float = math.inf
    hi: float = -math.inf

    def include(self, *values: float | None) -> None:
        for v in values:
            if finite(v) and not (self.log and v is not None and v <= 0):
                assert v is not None
                self.lo, self.hi = min(self.lo, v), max(self.hi, v)

    def limits(self) -> tuple[float, float]:
        """The drawn range: the data's, padded (linear) or widened to a factor (log)."""
        lo, hi = self.lo, self.hi
        if lo > hi:  # no data
            return (1.0, 10.0) if self.log else (0.0, 1.0)
        if self.log:
            if hi / lo < 1.0 + 1e-9:
                return lo / 2, hi * 2
            span = math.log10(hi / lo)
            return lo / 10 ** (span * PAD), hi * 10 ** (span * PAD)
        if hi - lo < 1e-12 * max(1.0, abs(lo)):
            half = abs(lo) * 0.05 or 0.5
            return lo - half, hi + half
        pad = (hi - lo) * PAD
        return lo - pad, hi + pad

    def ticks(self) -> list[float]:
        lo, hi = self.limits()
        return log_ticks(lo, hi) if self.log else nice_ticks(lo, hi)


class Scale:
    def __init__(self, axis: Axis, start: float, end: float) -> None:
        self.log = axis.log
        lo, hi = axis.limits()
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if self.log else (lo, hi)
        self.start, self.end = start, end

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return self.start + (t - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def ok(self, v: float | None) -> bool:
        return finite(v) and not (self.log and v is not None and v <= 0)
