"""Domain errors. They become a clean message and an exit code only at the CLI edge."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


class FtsweepError(Exception):
    """An error the user can act on; the CLI prints it without a traceback."""

    exit_code = 1


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One problem in an experiment file: where, what, and what would be valid."""

    path: tuple[str | int, ...]
    message: str
    value: Any = None
    has_value: bool = False
    valid: str = ""
    file: str = ""
    line: int | None = None

    @property
    def key_path(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out or "<top level>"

    def format(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else (self.file or "<config>")
        text = f"{where}: {self.key_path}: {self.message}"
        if self.has_value:
            text += f" (got {short_repr(self.value)})"
        if self.valid:
            text += f"; valid: {self.valid}"
        return text


@dataclass
class ConfigError(FtsweepError):
    """Every problem found in an experiment file, reported at once (exit code 2)."""

    problems: Sequence[Problem] = field(default_factory=list)
    exit_code = 2

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in experiment file:"
        return "\n".join([head, *("  " + p.format() for p in self.problems)])
