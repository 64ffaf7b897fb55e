"""Safe YAML loading that remembers the line of every key, for file:line errors.

The document is composed with ``yaml.SafeLoader`` (never the full loader: invariant 7)
and constructed from the same node tree, so the positions and the values agree.

Aliases are bounded before anything walks the tree: a few hundred bytes of nested
aliases ("billion laughs") expand to billions of nodes, and recording a line for each
exhausted memory. A file may use at most ``MAX_ALIASES`` aliases, its tree expanded
may hold at most ``MAX_EXPANDED_NODES`` nodes, and an alias may not contain itself;
past that it is refused with the line where the expansion grows too large.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ftsweep.errors import ConfigError, Problem

Path_ = tuple[str | int, ...]

# Far above any hand-written experiment file, far below what hurts a machine.
MAX_ALIASES = 1000
MAX_EXPANDED_NODES = 100_000


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

    def sets(self, path: Path_) -> bool:
        """Whether the file itself writes the key at ``path`` (block or flow style)."""
        return tuple(path) in self._lines

    def problem(self, path: Path_, message: str, **kw: Any) -> Problem:
        return Problem(
            path=tuple(path), message=message, file=self.file, line=self.line(path), **kw
        )


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
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one) and
    stops composing after MAX_ALIASES aliases."""

    aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"more than {MAX_ALIASES} aliases (*name); refusing to expand them",
                    self.peek_event().start_mark,
                )
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def _check_expansion(root: yaml.Node) -> None:
    """Raise a MarkedYAMLError if the tree, with every alias expanded, is too large.

    Sizes are computed once per node (aliases share nodes), children first, so the
    error points at the innermost node whose expansion crosses the limit.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in open_:
                raise yaml.composer.ComposerError(
                    None, None, "an alias refers to a node that contains it", node.start_mark
                )
            open_.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_.discard(key)
        sizes[key] = 1 + sum(sizes[id(child)] for child in children)
        if sizes[key] > MAX_EXPANDED_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases here expand to more than {MAX_EXPANDED_NODES:,} values; "
                "refusing to expand them",
                node.start_mark,
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> tuple[Any, Positions]:
    """Load ``path`` safely; a syntax error becomes a ConfigError with its line."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem((), f"cannot read file: {exc.strerror}", file=file)]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        msg = (
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column}; "
            "save the file as UTF-8"
        )
        raise ConfigError([Problem((), msg, file=file, line=bad_line)]) from None
    try:
        loader = _UniqueKeyLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_expansion(node)
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
