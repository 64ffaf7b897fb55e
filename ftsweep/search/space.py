"""A search's method-aware conditional space: parsing, checking, sampling, grid points.

Syntax (docs/experiments.md has the full reference)::

    space:
      method:
        - name: full
          training.lr: {float: [1.0e-4, 1.0e-2], log: true}
        - name: lora
          r: {int: [4, 32], step: 4}
          alpha: 32                                  # a plain value is fixed
          target_modules: {choices: [[q_proj, v_proj], all-linear]}
          training.lr: {float: [1.0e-4, 3.0e-2], log: true}
          pruner: {n_warmup_steps: 100}              # this method's own grace
      training.warmup_ratio: {float: [0.0, 0.2]}     # shared: every method searches it

A distribution is a mapping with exactly one of ``float``, ``int`` or ``choices``. A
method's own key replaces a shared one for that method, as in the matrix. Parsing never
raises: every problem is collected with its key path (STYLE 3).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ftsweep.errors import did_you_mean
from ftsweep.matrix import Point, _key_is_list_valued
from ftsweep.methods import METHODS

Path_ = tuple[str | int, ...]
KINDS = ("float", "int", "choices")
ENTRY_RESERVED = ("name", "pruner")
# Above this many points a grid is refused: it would never finish.
MAX_GRID_POINTS = 10_000
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Dist:
    """One searched parameter: float / int ranges (log or stepped) or a list of choices."""

    kind: str  # "float" | "int" | "choices"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def encoded(self) -> bool:
        """Choices that are not scalars (lists of module names) travel as JSON strings."""
        return any(not isinstance(c, _SCALARS) for c in self.choices)

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(
                name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        if self.encoded:
            return json.loads(
                trial.suggest_categorical(name, [json.dumps(c) for c in self.choices])
            )
        return trial.suggest_categorical(name, list(self.choices))

    def grid_values(self) -> list[Any] | None:
        """Every value on a grid, or None for a continuous float range."""
        if self.kind == "choices":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            return None
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def probes(self) -> list[Any]:
        """Values that validation checks: the ends of a range, or every choice."""
        if self.kind == "choices":
            return list(self.choices)
        lo, hi = (int(self.low), int(self.high)) if self.kind == "int" else (self.low, self.high)
        return [lo, hi]

    def to_optuna_value(self, value: Any) -> Any:
        """A value as the study stores it (for warm-start from grid runs)."""
        return json.dumps(value) if self.kind == "choices" and self.encoded else value

    def describe(self) -> str:
        if self.kind == "choices":
            return "one of " + ", ".join(json.dumps(c) for c in self.choices)
        kind = "int" if self.kind == "int" else "float"
        extra = " log" if self.log else ""
        extra += f" step {self.step:g}" if self.step else ""
        return f"{kind} [{self.low:g}, {self.high:g}]{extra}"


@dataclass
class MethodSpace:
    """One method's part of the space: its distributions, fixed values and pruner grace."""

    method: str
    dists: dict[str, Dist] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, int] = field(default_factory=dict)
    origin: Path_ = ()

    def sample(self, trial: Any, prefix: str = "") -> dict[str, Any]:
        """Values for one trial: each distribution suggested in sorted order, plus fixed."""
        values = dict(self.fixed)
        for key in sorted(self.dists):
            values[key] = self.dists[key].suggest(trial, prefix + key)
        return values

    def point(self, values: dict[str, Any]) -> Point:
        return Point(self.method, tuple(sorted(values.items())), self.origin)

    def grid(self) -> list[dict[str, Any]]:
        keys = sorted(self.dists)
        axes = [self.dists[k].grid_values() or [] for k in keys]
        return [
            {**self.fixed, **dict(zip(keys, combo, strict=True))}
            for combo in itertools.product(*axes)
        ]

    def grid_size(self) -> int:
        return math.prod(len(self.dists[k].grid_values() or []) for k in self.dists)

    def probe_values(self) -> list[dict[str, Any]]:
        """Few value sets that together touch every range end and every choice."""
        base = {k: d.probes()[0] for k, d in self.dists.items()}
        out = [{**self.fixed, **base}]
        for key, dist in sorted(self.dists.items()):
            for value in dist.probes()[1:]:
                out.append({**self.fixed, **base, key: value})
        return out


@dataclass
class SearchSpace:
    methods: list[MethodSpace]

    def get(self, method: str) -> MethodSpace:
        return next(m for m in self.methods if m.method == method)

    @property
    def names(self) -> list[str]:
        return [m.method for m in self.methods]


def parse_dist(raw: Any, path: Path_, problems: list) -> Dist | None:
    """A distribution from its YAML mapping, or None (with problems) when it is not valid."""
    kinds = [k for k in KINDS if k in raw]
    extra = sorted(set(raw) - set(KINDS) - {"log", "step"}, key=str)
    if len(kinds) != 1 or extra:
        bad = extra[0] if extra else None
        hint = did_you_mean(str(bad), [*KINDS, "log", "step"]) if bad is not None else ""
        problems.append(
            (
                path,
                "a distribution has exactly one of float: [low, high], "
                f"int: [low, high] or choices: [...], plus optional log / step{hint}",
                raw,
            )
        )
        return None
    kind, log, step = kinds[0], raw.get("log", False), raw.get("step")
    if not isinstance(log, bool):
        problems.append((path + ("log",), "log is true or false", log))
        return None
    if kind == "choices":
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            problems.append((path + ("choices",), "choices is a non-empty list", choices))
            return None
        if log or step is not None:
            problems.append((path, "log and step apply to float and int ranges, not choices", raw))
            return None
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            problems.append((path + ("choices",), "choices repeat a value", choices))
            return None
        return Dist("choices", choices=tuple(choices))
    bounds = raw[kind]
    number = int if kind == "int" else (int, float)
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, number) and not isinstance(b, bool) for b in bounds)
    ):
        problems.append(
            (
                path + (kind,),
                f"{kind} takes [low, high], two {'integers' if kind == 'int' else 'numbers'}",
                bounds,
            )
        )
        return None
    low, high = bounds
    before = len(problems)
    if not low < high:
        problems.append(
            (
                path + (kind,),
                "low must be below high (for a fixed value write the value itself)",
                bounds,
            )
        )
    if log and low <= 0:
        problems.append((path + (kind,), "a log scale needs low > 0", bounds))
    if step is not None:
        ok = isinstance(step, number) and not isinstance(step, bool) and step > 0
        if not ok:
            problems.append((path + ("step",), f"step is a positive {kind}", step))
        elif log and kind == "float":
            problems.append((path, "a float range takes log or step, not both", raw))
        elif log and kind == "int" and step != 1:
            problems.append((path, "an int range on a log scale takes step 1", raw))
    if len(problems) > before:
        return None
    return Dist(kind, float(low), float(high), log, None if step is None else float(step))


def parse_space(raw: Any, grid: bool = False) -> tuple[SearchSpace, list[tuple[Path_, str, Any]]]:
    """Parse ``search.space``; never raises. Problems are (path, message, bad value)."""
    problems: list[tuple[Path_, str, Any]] = []
    path: Path_ = ("search", "space")
    if not isinstance(raw, dict):
        problems.append((path, "search.space is a mapping with a 'method' list", raw))
        return SearchSpace([]), problems
    shared_raw = {k: v for k, v in raw.items() if k != "method"}
    shared: dict[str, Any] = {}
    for key, value in shared_raw.items():
        if not isinstance(key, str) or "." not in key:
            problems.append(
                (
                    path + (str(key),),
                    "shared keys of a space are dotted keys such as "
                    "training.warmup_ratio; method parameters go in a method's entry",
                    key,
                )
            )
            continue
        shared[key] = value
    entries = raw.get("method")
    if not isinstance(entries, list) or not entries:
        problems.append(
            (
                path + ("method",),
                "search.space.method must be a non-empty list of "
                "methods, each a name or a mapping with 'name'",
                entries,
            )
        )
        return SearchSpace([]), problems
    methods: list[MethodSpace] = []
    for i, entry in enumerate(entries):
        where = path + ("method", i)
        entry = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append((where, "each method is a name or a mapping with 'name'", entry))
            continue
        name = entry["name"]
        if name not in METHODS:
            problems.append(
                (where + ("name",), f"unknown method{did_you_mean(name, METHODS)}", name)
            )
            continue
        if name in (m.method for m in methods):
            problems.append((where + ("name",), "a method appears once in a space", name))
            continue
        if not METHODS[name].trains:
            problems.append(
                (
                    where + ("name",),
                    f"{name} trains nothing, so it has nothing to "
                    "search; compare against it with a matrix",
                    name,
                )
            )
            continue
        ms = MethodSpace(name, origin=where)
        before = len(problems)
        own = {k: v for k, v in entry.items() if k not in ENTRY_RESERVED}
        for key, value in {**{k: v for k, v in shared.items() if k not in own}, **own}.items():
            from_shared = key not in own
            _add_key(ms, key, value, (path + (key,)) if from_shared else (where + (key,)), problems)
        _parse_override(ms, entry.get("pruner"), where + ("pruner",), problems)
        if not ms.dists and len(problems) == before:
            problems.append(
                (
                    where,
                    f"{name} has nothing to search: give at least one "
                    "distribution ({float: [low, high]}, {int: ...} or {choices: ...})",
                    entry,
                )
            )
        if grid:
            _check_grid(ms, where, problems)
        methods.append(ms)
    return SearchSpace(methods), problems


def _add_key(ms: MethodSpace, key: Any, value: Any, where: Path_, problems: list) -> None:
    if not isinstance(key, str):
        problems.append((where, "keys are names such as r or training.lr", key))
        return
    list_valued, err = _key_is_list_valued(key, ms.method)
    if err:
        problems.append((where, err, value))
        return
    if isinstance(value, dict):
        dist = parse_dist(value, where, problems)
        if dist is not None:
            ms.dists[key] = dist
    elif isinstance(value, list) and not list_valued:
        problems.append(
            (
                where,
                f"in a search space a list is not an axis; write {{choices: "
                f"{json.dumps(value)}}} to search these values",
                value,
            )
        )
    else:
        ms.fixed[key] = value


def _parse_override(ms: MethodSpace, raw: Any, where: Path_, problems: list) -> None:
    if raw is None:
        return
    allowed = ("n_warmup_steps", "min_resource")
    if not isinstance(raw, dict):
        problems.append((where, "a method's pruner override is a mapping", raw))
        return
    for key, value in raw.items():
        if key not in allowed:
            problems.append(
                (
                    where + (str(key),),
                    f"unknown pruner override{did_you_mean(str(key), allowed)}",
                    key,
                )
            )
        elif (
            not isinstance(value, int) or isinstance(value, bool) or value < (key == "min_resource")
        ):
            problems.append((where + (key,), f"{key} is an integer number of steps", value))
        else:
            ms.pruner[key] = value


def _check_grid(ms: MethodSpace, where: Path_, problems: list) -> None:
    for key, dist in sorted(ms.dists.items()):
        if dist.grid_values() is None:
            problems.append(
                (
                    where + (key,),
                    "the grid sampler needs every value listed: give "
                    "this float range a step, or use choices",
                    dist.describe(),
                )
            )
    size = ms.grid_size()
    if size > MAX_GRID_POINTS:
        problems.append(
            (
                where,
                f"this grid has {size:,} points (over {MAX_GRID_POINTS:,})",
                {k: len(d.grid_values() or []) for k, d in ms.dists.items()},
            )
        )
