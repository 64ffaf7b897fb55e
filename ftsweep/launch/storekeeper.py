"""The launcher's side of the store: ingest as runs finish, and survive a bad store or disk.

The run directories are the truth and the store is rebuilt from them, so neither a
damaged store file nor a full disk may stop a sweep:

* a store DuckDB cannot read is moved aside (kept, ``store.damaged-<time>.duckdb``) and
  rebuilt from the run directories when the launch starts, and the launcher says so;
* a write that fails because the disk is full is rolled back (the store stays as it
  was), named as such once, and the sweep goes on; the launch then exits 1, and a
  relaunch after space was freed brings the store up to date (ingest is incremental).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from rich.markup import escape

from ftsweep.rundir import RunDir
from ftsweep.store import DamagedStore, Store, no_space, set_aside_and_rebuild
from ftsweep.workspace import Workspace


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def disk_full_message(where: Path, exc: BaseException, doing: str) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (
        f"disk full while {doing} in {where} ({first}); what was written before is "
        "kept (run directories are the truth, the store rolled back). Free space, then "
        "`ftsweep launch` again resumes the sweep and brings the store up to date"
    )


class StoreKeeper:
    """Ingests for one launch; ``problem`` says why the store is behind, if it is."""

    def __init__(self, ws: Workspace, experiment: str, console: Any):
        self.ws, self.experiment = ws, experiment
        self.console = console or _stderr()
        self.problem: str | None = None

    def say(self, text: str) -> None:
        self.console.print(f"[yellow]store:[/] {escape(text)}", highlight=False)

    def disk_full(self, exc: BaseException, doing: str) -> None:
        """Name a full disk once (every later write would repeat it)."""
        if self.problem is None:
            self.problem = disk_full_message(self.ws.root, exc, doing)
            self.console.print(f"[red]disk full:[/] {escape(self.problem)}", highlight=False)

    def start(self) -> None:
        """The first ingest of a launch; a damaged store is set aside and rebuilt here."""
        try:
            self.ingest(None)
        except DamagedStore as exc:
            aside, stats = set_aside_and_rebuild(self.ws)
            self.say(
                f"the store was damaged ({exc.detail}); moved it to {aside} (kept for "
                "inspection) and rebuilt it from the run directories"
            )
            self._warn(stats)

    def ingest(self, run_dirs: list[RunDir] | None, search: Any = None) -> None:
        """Bring the store up to date with these run directories (None: the experiment's)."""
        try:
            with Store.writer(self.ws) as store:
                stats = (
                    store.ingest_all(self.experiment)
                    if run_dirs is None
                    else store.ingest_runs(run_dirs)
                )
                if search:
                    search.publish(store)
        except (duckdb.Error, OSError) as exc:
            if not no_space(exc):
                raise
            self.disk_full(exc, "writing the store")
            return
        self._warn(stats)

    def _warn(self, stats: Any) -> None:
        """Run directories the store could not read are reported, never silently skipped."""
        for problem in getattr(stats, "problems", [])[:20]:
            self.say(str(problem))
