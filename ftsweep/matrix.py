"""Pure, deterministic expansion of an experiment's matrix into points.

Syntax (see docs/experiments.md for examples)::

    matrix:
      method:                       # one entry per method, each with its own space
        - base                      # a bare name: the method with its defaults
        - {name: lora, r: [4, 16], alpha: 32, target_modules: [q_proj, v_proj],
           training.lr: [1e-3, 3e-3]}
      training.batch_size: [16]     # shared axes: dotted keys into the base blocks
      zip:                          # values that vary together (one axis per group)
        - {training.lr: [1e-4, 3e-4], training.warmup_steps: [0, 10]}
      include:                      # extra single points, on top of the base config
        - {method: lora, r: 64, training.lr: 1e-3}
      exclude:                      # drop every point matching all the given values
        - {method: full, training.lr: 3e-4}

A list is an axis of values, except for a parameter whose value is itself a list
(``target_modules``): there a list is one value and a list of lists is an axis.
A method's own value for a key replaces the shared axis for that method, so each
method can be tuned on its own scale. Keys are expanded in sorted order with
``itertools.product``; the same file always gives the same points in the same order.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ftsweep.config.schema import OVERRIDABLE_BLOCKS
from ftsweep.errors import did_you_mean
from ftsweep.methods import METHODS
from ftsweep.methods.base import annotation_is_list

Path_ = tuple[str | int, ...]
RESERVED = ("method", "zip", "include", "exclude")


@dataclass(frozen=True)
class Point:
    """One cell of the matrix before seeds: a method and the values set for it."""

    method: str
    values: tuple[tuple[str, Any], ...]  # (key, value), sorted; keys are params or dotted
    # Where the point came from (its method entry or include), to blame in errors.
    origin: Path_ = field(default=(), compare=False)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass
class Expansion:
    points: list[Point]
    problems: list[tuple[Path_, str, Any]]  # (path, message, bad value)


# Inputs are fingerprinted once per experiment (they are part of every run id), so they
# cannot vary inside one: compare models or data sets with one experiment file each.
NOT_AXES = frozenset(
    {
        "model.path",
        "model.revision",
        "model.trust_remote_code",
        "model.allow_pickle",
        "data.train",
        "data.eval",
        "data.test",
        "data.hub",
    }
)


def dotted_field(key: str) -> tuple[Any, str | None]:
    """(annotation, error) for a dotted key such as ``training.early_stopping.patience``."""
    if key in NOT_AXES or key.startswith("data.hub."):
        return None, (
            f"{key!r} cannot vary inside an experiment (model and data files are "
            "fingerprinted into every run id); use one experiment file per model or "
            "data set"
        )
    block, _, rest = key.partition(".")
    model: Any = OVERRIDABLE_BLOCKS.get(block)
    if model is None or not rest:
        valid = ", ".join(f"{b}.<key>" for b in OVERRIDABLE_BLOCKS)
        return None, f"unknown matrix key {key!r}{did_you_mean(key, _all_dotted())}; valid: {valid}"
    annotation: Any = None
    for part in rest.split("."):
        fields = (
            model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        )
        if part not in fields:
            return None, (
                f"unknown key {key!r}{did_you_mean(key, _all_dotted())}; "
                f"valid keys of {block}: {', '.join(sorted(fields)) or '(none)'}"
            )
        annotation = fields[part].annotation
        model = annotation
    return annotation, None


def _all_dotted() -> list[str]:
    out = []
    for block, model in OVERRIDABLE_BLOCKS.items():
        out += [f"{block}.{f}" for f in model.model_fields]
    return out


def _is_axis(value: Any, list_valued: bool) -> bool:
    if not isinstance(value, list):
        return False
    if list_valued:  # a list of lists is an axis; a flat list is one value
        return bool(value) and all(isinstance(v, list) for v in value)
    return True


def _key_is_list_valued(key: str, method: str | None) -> tuple[bool, str | None]:
    if "." in key:
        annotation, err = dotted_field(key)
        return (annotation_is_list(annotation) if annotation is not None else False), err
    cls = METHODS.get(method or "")
    if cls is None:
        return False, None  # reported elsewhere
    if key not in cls.Params.model_fields:
        valid = sorted(cls.Params.model_fields)
        return False, (
            f"unknown parameter {key!r} for method {method!r}{did_you_mean(key, valid)}; "
            f"valid: {', '.join(valid) or '(none: this method has no parameters)'}"
            " or a dotted key such as training.lr"
        )
    return key in cls.list_fields(), None


def _axes(
    mapping: dict[str, Any], method: str | None, path: Path_, problems: list
) -> list[list[tuple[tuple[str, Any], ...]]]:
    """Each axis as the list of its options; an option is a tuple of (key, value)."""
    axes: list[list[tuple[tuple[str, Any], ...]]] = []
    for key in [k for k in mapping if not isinstance(k, str)]:
        problems.append((path + (str(key),), "matrix keys are names such as r or training.lr", key))
    for key in sorted(
        k for k in mapping if isinstance(k, str) and k not in RESERVED and k != "name"
    ):
        value = mapping[key]
        list_valued, err = _key_is_list_valued(key, method)
        if err:
            problems.append((path + (key,), err, value))
            continue
        if _is_axis(value, list_valued):
            if not value:
                problems.append((path + (key,), "an axis needs at least one value", value))
                continue
            axes.append([((key, v),) for v in value])
        else:
            axes.append([((key, value),)])
    for gi, group in enumerate(mapping.get("zip") or []):
        axes += _zip_axis(group, method, path + ("zip", gi), problems)
    return axes


def _zip_axis(group: Any, method: str | None, path: Path_, problems: list) -> list:
    if not isinstance(group, dict) or not group:
        problems.append((path, "a zip group is a mapping of key: [values...]", group))
        return []
    lengths = {k: len(v) for k, v in group.items() if isinstance(v, list)}
    if len(lengths) != len(group) or len(set(lengths.values())) != 1:
        problems.append(
            (
                path,
                f"zipped keys need lists of equal length; got lengths {lengths or '(none)'}",
                group,
            )
        )
        return []
    keys = sorted(group)
    for k in keys:
        _, err = _key_is_list_valued(k, method)
        if err:
            problems.append((path + (k,), err, group[k]))
            return []
    n = next(iter(lengths.values()))
    return [[tuple((k, group[k][i]) for k in keys) for i in range(n)]]


def _method_entries(raw: Any, problems: list) -> list[tuple[Path_, dict[str, Any]]]:
    path: Path_ = ("matrix", "method")
    if not isinstance(raw, list) or not raw:
        problems.append((path, "matrix.method must be a non-empty list of methods", raw))
        return []
    out = []
    for i, entry in enumerate(raw):
        entry = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append((path + (i,), "each method is a name or a mapping with 'name'", entry))
            continue
        if entry["name"] not in METHODS:
            problems.append(
                (
                    path + (i, "name"),
                    f"unknown method{did_you_mean(entry['name'], METHODS)}",
                    entry["name"],
                )
            )
            continue
        out.append((path + (i,), entry))
    return out


def _point(method: str, combo: tuple[tuple[tuple[str, Any], ...], ...], origin: Path_) -> Point:
    values: dict[str, Any] = {}
    for option in combo:
        values.update(dict(option))
    return Point(method, tuple(sorted(values.items())), origin)


def entry_axes(matrix: dict[str, Any], problems: list) -> list[tuple[Path_, str, list]]:
    """(origin, method, axes) of each method entry: its own axes and the shared ones it
    inherits. The entry's points are ``itertools.product(*axes)``."""
    shared = {k: v for k, v in matrix.items() if k not in ("method", "include", "exclude")}
    out = []
    for path, entry in _method_entries(matrix.get("method"), problems):
        method = entry["name"]
        own = {k: v for k, v in entry.items() if k != "name"}
        own_keys = set(own) | {k for g in own.get("zip") or [] if isinstance(g, dict) for k in g}
        inherited = {k: v for k, v in shared.items() if k != "zip" and k not in own_keys}
        inherited["zip"] = [
            g for g in shared.get("zip") or [] if not (isinstance(g, dict) and set(g) & own_keys)
        ]
        axes = _axes(inherited, method, ("matrix",), problems) + _axes(own, method, path, problems)
        out.append((path, method, axes))
    return out


def expand(matrix: dict[str, Any]) -> Expansion:
    """Expand a raw matrix mapping into points (no seeds). Never raises for bad input.

    This builds every point: count them first (``matrix_size.count``) where the file
    may be large."""
    problems: list[tuple[Path_, str, Any]] = []
    points = list(iter_points(matrix, problems))
    return Expansion(points, problems)


def iter_points(matrix: dict[str, Any], problems: list) -> Iterator[Point]:
    """The points one at a time: each entry's product, then the includes; a point is
    dropped by the first exclude entry it matches, or when it repeats an earlier point.

    Problems are appended as they are found; an exclude entry that matched nothing is
    known only once the iterator is exhausted.
    """
    shape_problems: list[tuple[Path_, str, Any]] = []
    excludes = exclude_entries(matrix.get("exclude") or [], shape_problems)
    matched = [False] * len(excludes)
    seen: set[str] = set()
    grid = (
        _point(method, combo, path)
        for path, method, axes in entry_axes(matrix, problems)
        for combo in itertools.product(*axes)
    )
    for point in itertools.chain(grid, _includes(matrix.get("include") or [], problems)):
        hit = next((i for i, (_, e) in enumerate(excludes) if matches(point, e)), None)
        if hit is not None:
            matched[hit] = True
            continue
        key = point_key(point)
        if key not in seen:
            seen.add(key)
            yield point
    problems += shape_problems
    problems += [
        (path, "this exclude entry matches no run (a typo?)", entry)
        for (path, entry), hit in zip(excludes, matched, strict=True)
        if not hit
    ]


def point_key(point: Point) -> str:
    """Equal for points that would be the same run (an include may repeat an axis point)."""
    return json.dumps([point.method, point.values], sort_keys=True, default=str)


def _includes(raw: Any, problems: list) -> list[Point]:
    out = []
    for i, entry in enumerate(raw if isinstance(raw, list) else [raw]):
        path: Path_ = ("matrix", "include", i)
        method = entry.get("method") if isinstance(entry, dict) else None
        if not isinstance(method, str) or method not in METHODS:
            got = entry.get("method") if isinstance(entry, dict) else entry
            problems.append(
                (
                    path,
                    f"an include entry needs a known 'method'{did_you_mean(str(got), METHODS)}",
                    got,
                )
            )
            continue
        body = {k: v for k, v in entry.items() if k != "method"}
        axes = _axes(body, entry["method"], path, problems)
        if any(len(a) > 1 for a in axes):
            problems.append(
                (path, "include adds single points; use a method entry for axes", entry)
            )
            continue
        out += [_point(entry["method"], combo, path) for combo in itertools.product(*axes)]
    return out


def include_points(matrix: dict[str, Any]) -> list[Point]:
    """The include entries' points (problems ignored: the expansion reports them)."""
    return _includes(matrix.get("include") or [], [])


def exclude_entries(raw: Any, problems: list) -> list[tuple[Path_, dict[str, Any]]]:
    out = []
    for i, entry in enumerate(raw if isinstance(raw, list) else [raw]):
        path: Path_ = ("matrix", "exclude", i)
        if not isinstance(entry, dict) or not entry:
            problems.append((path, "an exclude entry is a mapping of key: value", entry))
            continue
        out.append((path, entry))
    return out


def matches(point: Point, entry: dict[str, Any]) -> bool:
    """Whether an exclude entry drops this point: every key it names has its value."""
    values = {**point.as_dict(), "method": point.method}
    return all(k in values and same_value(values[k], v) for k, v in entry.items())


def same_value(a: Any, b: Any) -> bool:
    """Equality that treats YAML's '1e-3' (a string in YAML 1.1) and 0.001 as equal."""
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def nested_set(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` inside nested dicts. Only the leaf changes: siblings are kept (deep merge)."""
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def nested_get(source: dict[str, Any], dotted: str) -> Any:
    node: Any = source
    for part in dotted.split("."):
        node = node[part]
    return node
