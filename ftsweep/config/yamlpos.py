"""Safe YAML loading that remembers the line of every key, for file:line errors.

The document is composed with ``yaml.SafeLoader`` (never the full loader: invariant 7)
and constructed from the same node tree, so the positions and the values agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ftsweep.errors import ConfigError, Problem

Path_ = tuple[str | int, ...]


class Positions:
    """Maps key paths to 1-based line numbers; a missing path falls back to its parent."""

    def __init__(self, lines: dict[Path_, int], file: str):
        self._lines = lines
        self.file = file

    def line(self, path: Path_) -> int | None:
        path = tuple(path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), None)

    def problem(self, path: Path_, message: str, **kw: Any) -> Problem:
        return Problem(path=tuple(path), message=message, file=self.file, line=self.line(path), **kw)


def _walk(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            out[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), out)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys: PyYAML silently keeps the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_yaml(path: Path) -> tuple[Any, Positions]:
    """Load ``path`` safely; a syntax error becomes a ConfigError with its line."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem((), f"cannot read file: {exc.strerror}", file=file)]) from exc
    try:
        loader = _UniqueKeyLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = f"invalid YAML: {exc.problem or exc}"
        raise ConfigError([Problem((), msg, file=file, line=line)]) from exc
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, Positions(lines, file)
