"""The one writer and the many readers of a workspace's DuckDB store (invariant 3).

* Only the process holding the workspace lock writes ``store.duckdb`` (``Store.writer``);
  on a clean exit it publishes a snapshot (``snapshot.publish``: cost grows with what
  changed, not with the store).
* Readers only ever open the published snapshot, read-only, with external access off.
  ``open_reader`` first checks, by ``stat`` alone, whether the run directories changed
  since that snapshot (``scan.diff`` against its watermarks). On a settled workspace it
  answers at once. If something changed and the workspace is idle it catches up
  incrementally under the lock (only the new bytes are read); if a sweep holds the lock
  it reads the sweep's latest snapshot and ``Freshness`` says how far behind it is.
  No reader ever blocks the writer, and the writer never blocks a reader.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ftsweep.rundir import RunDir
from ftsweep.store import scan, snapshot
from ftsweep.store.health import DamagedStore, damaged, first_line
from ftsweep.store.migrations import StoreError, migrate
from ftsweep.store.snapshot import READER_CONFIG
from ftsweep.store.state import load_states
from ftsweep.workspace import Workspace, WorkspaceLocked, safe_name

if TYPE_CHECKING:  # the writer's modules import pyarrow; readers never need them
    from ftsweep.store.ingest import IngestStats

# DuckDB's own default is 80% of RAM; ingest works in bounded batches and spills
# beyond this, so a big workspace never takes the machine's memory.
WRITER_MEMORY = "1GB"


def _connect_writer(path: Path) -> duckdb.DuckDBPyConnection:
    # Threads: the CPUs this process may use (DuckDB counts the machine's).
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": WRITER_MEMORY,
        "threads": max(1, len(os.sched_getaffinity(0))),
    }
    con = duckdb.connect(str(path), config=config)
    con.execute("SET enable_progress_bar = false")  # it would print into the CLI's output
    migrate(con)
    return con


# The writer connection of each workspace whose lock this process holds. A launcher
# enters Store.writer after every finished run; opening the store each time (and
# checkpointing it at every close) cost more than the ingest. The connection stays open
# until the lock is released (LockHandle.on_release), so it never outlives the lock.
_WRITERS: dict[Path, duckdb.DuckDBPyConnection] = {}


def _writer_connection(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    key = workspace.root.resolve()
    con = _WRITERS.get(key)
    if con is None:
        handle = workspace.held_lock()
        assert handle is not None
        try:
            con = _connect_writer(workspace.store_path)
        except duckdb.Error as exc:
            if damaged(exc):
                raise DamagedStore(workspace.store_path, first_line(exc)) from exc
            raise
        _WRITERS[key] = con
        handle.on_release.append(lambda: _close_writer(key))
    return con


def _close_writer(key: Path) -> None:
    con = _WRITERS.pop(key, None)
    if con is not None:
        try:
            con.close()  # checkpoints the WAL into the file
        except duckdb.Error:
            pass  # after an I/O error (a full disk): the error being handled says why


class Store:
    """A read-write connection to the store, for the workspace-lock holder only."""

    def __init__(self, workspace: Workspace, con: duckdb.DuckDBPyConnection):
        self.workspace = workspace
        self.con = con

    @classmethod
    @contextmanager
    def writer(cls, workspace: Workspace) -> Iterator[Store]:
        """Open the store read-write, migrated; publish a snapshot on a clean exit.

        Raises ``StoreError`` unless this process holds ``workspace.lock()``.
        """
        if not workspace.holds_lock():
            raise StoreError(
                f"writing the store of {workspace.root} needs the workspace lock; "
                "take it with `with workspace.lock():` first"
            )
        workspace.root.mkdir(parents=True, exist_ok=True)
        con = _writer_connection(workspace)
        try:
            store = cls(workspace, con)
            yield store
            store.publish_snapshot()
        except BaseException:
            _close_writer(workspace.root.resolve())  # start clean next time
            raise

    def ingest_runs(self, run_dirs: Iterable[RunDir]) -> IngestStats:
        """Bring these run directories' rows up to date (only what changed is read)."""
        from ftsweep.store.ingest import ingest

        return ingest(self.con, run_dirs, self.workspace.runs_dir)

    def ingest_all(self, experiment: str | None = None) -> IngestStats:
        """Bring every run directory of the workspace (or of one experiment) up to date:
        new runs, new log lines, changed results; rows of deleted run directories go."""
        from ftsweep.store.ingest import ingest_workspace

        exp_dir = safe_name(experiment) if experiment is not None else None
        return ingest_workspace(self.con, self.workspace.runs_dir, exp_dir)

    def publish_snapshot(self) -> Path:
        """Make what the store holds now what readers open next (cheap; see snapshot.py)."""
        return snapshot.publish(self.con, self.workspace)


def _build_file(path: Path, runs_dir: Path, studies_dir: Path | None = None) -> IngestStats:
    """Create a fresh, migrated, fully ingested DuckDB file at ``path``.

    ``studies_dir`` holds the search journals (their trials are rebuilt from them too).
    """
    from ftsweep.store.ingest import ingest_workspace

    con = _connect_writer(path)
    try:
        stats = ingest_workspace(con, runs_dir)
        if studies_dir is not None:
            from ftsweep.store.trials import ingest_journals

            ingest_journals(con, studies_dir)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return stats


def rebuild(workspace: Workspace) -> IngestStats:
    """Recreate the store from the run directories alone (they are the source of truth).

    Writes a new file beside the store and swaps it in with os.replace, so a crash
    leaves the old store intact. Needs the workspace lock: taken here if free, and
    ``WorkspaceLocked`` is raised if another process holds it. Must not be called from
    inside a ``Store.writer`` block (its connection is closed here).
    """
    if workspace.holds_lock():
        return _rebuild_locked(workspace)
    with workspace.lock():
        return _rebuild_locked(workspace)


def _rebuild_locked(workspace: Workspace) -> IngestStats:
    _close_writer(workspace.root.resolve())  # it would keep writing the old file
    tmp = workspace.root / f".store.rebuild.{os.getpid()}.duckdb"
    tmp.unlink(missing_ok=True)
    try:
        stats = _build_file(tmp, workspace.runs_dir, workspace.root / "studies")
        # A WAL left by a crashed writer belongs to the OLD file; replaying it into the
        # new one would corrupt it.
        Path(f"{workspace.store_path}.wal").unlink(missing_ok=True)
        os.replace(tmp, workspace.store_path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    with Store.writer(workspace):
        pass  # publishes: a new store_id, so a full copy, once
    return stats


def set_aside_and_rebuild(workspace: Workspace) -> tuple[Path, IngestStats]:
    """Move a damaged store aside (kept, with a timestamp in its name) and rebuild it from
    the run directories. Lock holder only. Returns where the damaged file went."""
    assert workspace.holds_lock()
    _close_writer(workspace.root.resolve())
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = workspace.root / f"store.damaged-{stamp}.duckdb"
    n = 1
    while aside.exists():
        aside = workspace.root / f"store.damaged-{stamp}-{n}.duckdb"
        n += 1
    os.replace(workspace.store_path, aside)
    wal = Path(f"{workspace.store_path}.wal")
    if wal.exists():
        os.replace(wal, Path(f"{aside}.wal"))
    return aside, _rebuild_locked(workspace)


def refresh(workspace: Workspace) -> bool:
    """If no one holds the lock, bring the store and its snapshot up to date.

    Returns False (doing nothing) when the lock is held elsewhere, i.e. a sweep runs
    and keeps the snapshot fresh itself, or when the workspace does not exist.
    """
    if not workspace.root.is_dir():
        return False  # no workspace here: reading must not create one
    try:
        handle = workspace.try_lock()
    except OSError:
        return False  # a read-only workspace: read what is published
    if handle is None:
        return False
    try:
        with Store.writer(workspace) as store:
            store.ingest_all()
    finally:
        handle.release()
    return True


@dataclass(frozen=True)
class Freshness:
    """How the snapshot a reader got compares with the run directories."""

    behind: str | None = None  # e.g. "2 new, 1 changed, 0 deleted run(s)"; None: current
    published_at: float | None = None
    locked: bool = False  # a sweep (or another reader) holds the lock

    def note(self) -> str | None:
        if self.behind is None:
            return None
        age = (
            f"published {time.time() - self.published_at:.0f} s ago, " if self.published_at else ""
        )
        who = (
            "another process holds the workspace lock: a sweep publishes as runs finish"
            if self.locked
            else "the workspace could not be locked to catch up"
        )
        return f"the store is behind the run directories by {self.behind} ({age}{who})"


def _behind(workspace: Workspace, con: duckdb.DuckDBPyConnection) -> scan.Changes | None:
    """What changed since this snapshot (None: it predates watermarks)."""
    try:
        states = load_states(con)
    except duckdb.CatalogException:
        return None
    files = scan.scan(workspace.runs_dir, known=states)
    return scan.diff(files, states, scan.deleted_keys(states, files, None), recheck_running=False)


def open_snapshot(workspace: Workspace) -> tuple[duckdb.DuckDBPyConnection, Freshness]:
    """A read-only connection to the freshest store readable without waiting, and how
    fresh it is. Never fails with a lock error. Close the connection when done."""
    con = snapshot.open_published(workspace)
    if con is not None:
        changes = _behind(workspace, con)
        if changes is not None and not changes:
            return con, Freshness()
        con.close()
    caught_up = refresh(workspace)
    con = snapshot.open_published(workspace)
    if con is None:
        return _private_copy(workspace), Freshness()
    if caught_up:
        return con, Freshness()
    changes = _behind(workspace, con)
    behind = "an unknown number of runs" if changes is None else changes.summary() or None
    target = snapshot.published(workspace)
    return con, Freshness(
        behind if changes is None or changes else None,
        target.stat().st_mtime if target else None,
        locked=True,
    )


def open_reader(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the freshest store readable without waiting.

    Never fails with a lock error: reads the published snapshot, catching it up first
    when the run directories changed and the workspace is idle; else (no snapshot
    published yet while a sweep holds the lock) a private copy built from the run
    directories. External access is disabled on the connection. Close it when done.
    """
    return open_snapshot(workspace)[0]


def _private_copy(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    """Build a throw-away store from the run directories and open it read-only.

    A file, not an in-memory DB, so the connection is read-only like every other
    reader's. The file is unlinked once open: POSIX keeps it alive until closed.
    """
    tmpdir = Path(tempfile.mkdtemp(prefix="ftsweep-reader-"))
    path = tmpdir / "store.duckdb"
    try:
        _build_file(path, workspace.runs_dir)
        return snapshot.connect_reader(path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


__all__ = [
    "READER_CONFIG",
    "Freshness",
    "Store",
    "StoreError",
    "WorkspaceLocked",
    "open_reader",
    "open_snapshot",
    "rebuild",
    "refresh",
]
