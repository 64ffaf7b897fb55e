"""The report's one rule for printing numbers (HTML and Markdown alike).

* Measured values get 3 significant digits and thousands separators: 0.174, 5,240,
  75,000 — never "7.505e+04" or "5238 ± 36.92". Trailing zeros are kept (0.500), so a
  cell shows its precision.
* Python ints are counts (parameters, examples, seeds) and are printed exactly: 1,234,567.
* Values below 0.001 in magnitude are written as "1.00×10⁻⁵" (still 3 digits, no "e").
* Missing and non-finite values print as "—".

Units belong in column headers ("peak memory (MB)"), not in cells.
"""

from __future__ import annotations

import math

from ftsweep.report.stats import Stat

DIGITS = 3
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt_num(value: float | int | None, digits: int = DIGITS) -> str:
    """``value`` with ``digits`` significant digits and thousands separators."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    x = float(value)
    if not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    exponent = math.floor(math.log10(abs(x)))
    if abs(x) < 1e-3:
        mantissa = f"{x / 10**exponent:.{digits - 1}f}"
        if mantissa.lstrip("-").startswith("10"):  # 9.995e-5 rounds up to 10.0e-5
            exponent += 1
            mantissa = f"{x / 10**exponent:.{digits - 1}f}"
        return f"{mantissa}×10{str(exponent).translate(_SUPERSCRIPT)}"
    decimals = digits - 1 - exponent
    rounded = round(x, decimals)
    if decimals <= 0:
        return f"{int(rounded):,}"
    # rounding can add a digit (0.9996 → 1.000): recount the decimals after rounding
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


CLIPPED = "‡"  # after an interval cut at the value's range (the report's notes say so)


def fmt_interval(iv: Stat | None) -> str:
    """ "mean [low, high] (n=k)"; the bracket is left out where no interval exists, and a
    ``CLIPPED`` mark follows a bracket cut at the value's possible range."""
    if iv is None or iv.mean is None or not math.isfinite(iv.mean):
        return "—"
    bracket = ""
    if iv.low is not None and iv.high is not None:
        mark = CLIPPED if iv.clipped else ""
        bracket = f" [{fmt_num(iv.low)}, {fmt_num(iv.high)}]{mark}"
    return f"{fmt_num(iv.mean)}{bracket} (n={iv.n:,})"


def fmt_range(iv: Stat | None) -> str:
    """Just "[low, high]" of an interval ("—" without one)."""
    if iv is None or iv.low is None or iv.high is None:
        return "—"
    return f"[{fmt_num(iv.low)}, {fmt_num(iv.high)}]"


def fmt_p(p: float | None) -> str:
    """A p-value: "< 0.001" below that, else 3 significant digits."""
    if p is None or not math.isfinite(p):
        return "—"
    return "< 0.001" if p < 0.001 else fmt_num(p)
