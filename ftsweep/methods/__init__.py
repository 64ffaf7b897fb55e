"""Fine-tuning methods, one module each, registered by name.

Adding a method: write ``methods/<name>.py`` with a ``Method`` subclass decorated with
``@register``, and import it at the bottom of this file. Nothing else changes.
"""

from __future__ import annotations

from ftsweep.errors import FtsweepError, did_you_mean
from ftsweep.methods.base import Method, MethodParams, ModelInfo

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name!r} registered twice")
    METHODS[cls.name] = cls
    return cls


class UnknownMethodError(FtsweepError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_method(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethodError(
            f"unknown method {name!r}{did_you_mean(name, METHODS)}; "
            f"valid: {', '.join(sorted(METHODS))}"
        ) from None


__all__ = ["METHODS", "Method", "MethodParams", "ModelInfo", "get_method", "register"]

# Built-in methods register themselves on import.
from ftsweep.methods import (  # noqa: E402,F401
    adalora,
    adapter,
    base_model,
    dora,
    freeze,
    full,
    ia3,
    llama_adapter,
    loha,
    lokr,
    lora,
    prefix,
    progressive,
    prompt,
    ptuning,
    qlora,
    rslora,
    vera,
)
