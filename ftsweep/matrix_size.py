"""How many points a matrix has, counted from its axes without building the points.

A method entry has ``len(axis_1) × … × len(axis_k)`` points. Exclusions are counted
with inclusion–exclusion over the exclude entries that can match the entry: for a
set of entries, the points matching all of them are the product, axis by axis, of
the options that satisfy every constraint on that axis's keys (an option is a bit
in a mask, so a set's count is an AND and a popcount per axis). Includes are few
and counted one by one. Loading an experiment counts first and refuses a matrix
above ``launch.max_runs`` before expanding it (issue 8, item 4).

The count equals ``len(expand(matrix).points)`` except where it says it is an upper
bound (``exact`` False): two entries of one method over the same keys (their points
may coincide), an axis whose keys another axis also sets, or exclude entries too
entangled to count in ``MAX_TERMS`` steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ftsweep.matrix import (
    Path_,
    Point,
    entry_axes,
    exclude_entries,
    include_points,
    matches,
    point_key,
    same_value,
)
from ftsweep.methods import METHODS

Option = tuple[tuple[str, Any], ...]
MAX_TERMS = 100_000  # inclusion–exclusion terms per entry before giving an upper bound


@dataclass
class EntrySize:
    origin: Path_
    method: str
    axes: list[tuple[str, int]]  # (axis name, distinct values), in expansion order
    points: int  # after exclusions


@dataclass
class MatrixSize:
    entries: list[EntrySize] = field(default_factory=list)
    includes: dict[str, int] = field(default_factory=dict)  # method → points includes add
    exact: bool = True

    def points_by_method(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.method] = out.get(e.method, 0) + e.points
        for method, n in self.includes.items():
            out[method] = out.get(method, 0) + n
        return out

    def runs(self, n_seeds: int) -> int:
        """Points × seeds; a method that does not train runs once (``_seeds_for``)."""
        return sum(
            n * (n_seeds if METHODS[m].trains else min(n_seeds, 1))
            for m, n in self.points_by_method().items()
        )

    def describe(self, n_seeds: int) -> str:
        """Which axes make the count: one clause per method entry with its varied axes."""
        parts = []
        for e in sorted(self.entries, key=lambda e: -e.points)[:5]:
            varied = [f"{name} ({n:,} values)" for name, n in e.axes if n > 1]
            where = ".".join(str(p) for p in e.origin)
            points = f"{e.points:,} point{'s' if e.points != 1 else ''}"
            parts.append(
                f"{e.method} at {where}: {' × '.join(varied) + ' = ' if varied else ''}{points}"
            )
        if len(self.entries) > 5:
            parts.append(f"{len(self.entries) - 5} more entries")
        if self.includes:
            parts.append(f"{sum(self.includes.values()):,} included points")
        return "; ".join(parts) + f"; × {n_seeds} seed{'s' if n_seeds != 1 else ''}"


def count(matrix: dict[str, Any]) -> MatrixSize:
    """The matrix's size; never raises and never builds the points (bad parts count 0)."""
    size = MatrixSize()
    excludes = [e for _, e in exclude_entries(matrix.get("exclude") or [], [])]
    keysets: dict[str, list[frozenset[str]]] = {}
    grids: list[tuple[str, list[list[Option]]]] = []
    for origin, method, raw_axes in entry_axes(matrix, []):
        axes = [_distinct(axis) for axis in raw_axes]
        keys = [frozenset(k for k, _ in axis[0]) for axis in axes if axis]
        if len(frozenset().union(*keys)) < sum(len(k) for k in keys):
            size.exact = False  # two axes set one key: the later wins, points may coincide
        entry_keys = frozenset().union(*keys)
        if entry_keys in keysets.get(method, []):
            size.exact = False
        keysets.setdefault(method, []).append(entry_keys)
        total = _product(len(a) for a in axes)
        excluded = _excluded(axes, method, excludes)
        if excluded is None:
            size.exact, excluded = False, 0
        size.entries.append(
            EntrySize(origin, method, [(_axis_name(a), len(a)) for a in axes], total - excluded)
        )
        grids.append((method, axes))
    seen: set[str] = set()
    for point in include_points(matrix):
        key = point_key(point)
        if key in seen or any(matches(point, e) for e in excludes):
            continue
        seen.add(key)
        if not any(_in_grid(point, method, axes) for method, axes in grids):
            size.includes[point.method] = size.includes.get(point.method, 0) + 1
    return size


def _distinct(axis: list[Option]) -> list[Option]:
    """The axis without repeated options (the expansion drops the repeated points)."""
    seen: set[str] = set()
    out = []
    for option in axis:
        key = json.dumps(option, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(option)
    return out


def _axis_name(axis: list[Option]) -> str:
    keys = [k for k, _ in axis[0]] if axis else []
    return keys[0] if len(keys) == 1 else f"zip({', '.join(keys)})"


def _product(numbers: Any) -> int:
    out = 1
    for n in numbers:
        out *= n
    return out


def _excluded(axes: list[list[Option]], method: str, excludes: list[dict[str, Any]]) -> int | None:
    """Points of this entry that some exclude entry matches, or None past MAX_TERMS."""
    key_axis = {k: i for i, axis in enumerate(axes) if axis for k, _ in axis[0]}
    bits = _Bits(axes)
    masks = []  # per relevant exclude: per axis, a bitmask of the options it keeps matching
    for entry in excludes:
        if not all(
            k in key_axis or (k == "method" and same_value(method, v)) for k, v in entry.items()
        ):
            continue  # it names a key this entry does not set, or another method
        mask = [(1 << len(axis)) - 1 for axis in axes]
        for k, v in entry.items():
            if k == "method":
                continue
            mask[key_axis[k]] &= bits(key_axis[k], k, v)
        masks.append(mask)
    terms = 0
    total = 0
    # Depth-first over sets of exclude entries in index order; a set whose intersection
    # is empty is not extended (every superset is empty too).
    stack = [(i, 1, m) for i, m in enumerate(masks) if all(m)]
    while stack:
        last, depth, mask = stack.pop()
        terms += 1
        if terms > MAX_TERMS:
            return None
        n = _product(m.bit_count() for m in mask)
        total += n if depth % 2 else -n
        for j in range(last + 1, len(masks)):
            child = [a & b for a, b in zip(mask, masks[j], strict=True)]
            if all(child):
                stack.append((j, depth + 1, child))
    return total


class _Bits:
    """Which options of each axis have a value ``same_value`` as a given one, as a bitmask.

    Numbers (and YAML 1.1's number strings) are looked up by their float value, which is
    what ``same_value`` compares; anything else is compared option by option.
    """

    def __init__(self, axes: list[list[Option]]) -> None:
        self.axes = axes
        self.numeric: dict[tuple[int, str], dict[float, int]] = {}

    def __call__(self, i: int, key: str, value: Any) -> int:
        number = _as_number(value)
        if number is None:
            return sum(
                1 << j
                for j, option in enumerate(self.axes[i])
                if same_value(dict(option)[key], value)
            )
        index = self.numeric.get((i, key))
        if index is None:
            index = self.numeric[(i, key)] = {}
            for j, option in enumerate(self.axes[i]):
                n = _as_number(dict(option)[key])
                if n is not None:
                    index[n] = index.get(n, 0) | 1 << j
        return index.get(number, 0)


def _as_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN equals nothing, itself included


def _in_grid(point: Point, method: str, axes: list[list[Option]]) -> bool:
    """Whether a method entry's product already holds this (include) point."""
    if point.method != method:
        return False
    values = {k: json.dumps(v, sort_keys=True, default=str) for k, v in point.values}
    keys = {k for axis in axes if axis for k, _ in axis[0]}
    if set(values) != keys:
        return False
    return all(
        any(
            all(values[k] == json.dumps(v, sort_keys=True, default=str) for k, v in option)
            for option in axis
        )
        for axis in axes
    )


def too_many(size: MatrixSize, n_seeds: int, limit: int) -> str | None:
    """The refusal message when the matrix has more runs than ``limit``, else None."""
    runs = size.runs(n_seeds)
    if runs <= limit:
        return None
    bound = "" if size.exact else "up to "
    return (
        f"the matrix has {bound}{runs:,} runs, more than the limit of {limit:,} "
        f"({size.describe(n_seeds)}); narrow the axes, or raise the limit with "
        "--max-runs N or launch.max_runs"
    )
