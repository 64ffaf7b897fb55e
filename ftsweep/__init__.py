"""ftsweep: declarative fine-tuning experiment manager.

The Python API (docs/api.md): ``load_experiment``, ``plan``, ``launch``, ``runs``,
``query``. They are imported on first use, so ``import ftsweep`` stays fast and pulls
in neither torch nor pandas.

``ftsweep.plan`` and ``ftsweep.launch`` are also the names of submodules. Python binds
a submodule as an attribute of its package when it is first imported, which would
replace the function; the package's module class refuses that one binding, so
``ftsweep.plan`` is always the API function. Code that wants the submodules imports
them by name (``from ftsweep.plan import plan``, ``from ftsweep.launch import launcher``),
which reads ``sys.modules`` and is unaffected.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"

_API = ("load_experiment", "plan", "launch", "runs", "query")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from ftsweep import api

        return getattr(api, name)
    raise AttributeError(f"module 'ftsweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return  # a submodule named like an API function: keep the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
