"""Report settings that come from the experiment file (its ``report:`` block).

The report reads only the store, which knows nothing of the file, so ``ftsweep launch``
records the block in the workspace, beside the studies: ``<root>/report_settings/<safe
experiment>.json``. ``ftsweep report`` reads it back, and its command-line options
override it. The block is never part of a run's config, so changing it retrains nothing.
A module of its own, outside ``ftsweep.report``, so ``launch`` does not import the
report's statistics stack to write one small file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftsweep.errors import FtsweepError
from ftsweep.rundir import atomic_write_json
from ftsweep.workspace import Workspace, safe_name


class SettingsError(FtsweepError):
    exit_code = 2


def settings_path(ws: Workspace, experiment: str) -> Path:
    return ws.root / "report_settings" / f"{safe_name(experiment)}.json"


def record_settings(ws: Workspace, experiment: str, block: dict[str, Any]) -> None:
    """Keep an experiment's ``report:`` block (as dumped by pydantic) for ``ftsweep report``."""
    path = settings_path(ws, experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, block)


def load_settings(ws: Workspace, experiment: str) -> dict[str, Any]:
    """The recorded ``report:`` block of an experiment ({} when none was recorded)."""
    path = settings_path(ws, experiment)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # a damaged file must not stop the report
        raise SettingsError(
            f"{path}: unreadable report settings ({exc}); delete it, or run "
            "`ftsweep launch` on the experiment file again to rewrite it"
        ) from exc
    return data if isinstance(data, dict) else {}
