"""The one writer and the many readers of a workspace's DuckDB store (invariant 3).

DuckDB allows one read-write process per file, and a read-only opener takes a shared
file lock that makes a later read-write open fail. So:

* only the process holding the workspace lock writes ``store.duckdb`` (``Store.writer``);
* after writing, it publishes a copy, ``store.snapshot.duckdb`` (temp file + os.replace,
  so a reader sees the old copy or the new one, never half of one);
* readers only ever open the SNAPSHOT, never the main file. If the workspace is idle they
  first refresh the store and its snapshot under the lock; if a sweep holds the lock they
  read the sweep's latest snapshot. Either way no reader ever blocks the writer, and the
  writer never blocks a reader.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ftsweep.rundir import RunDir
from ftsweep.store.ingest import IngestStats, ingest
from ftsweep.store.migrations import StoreError, migrate
from ftsweep.workspace import Workspace, WorkspaceLocked

# Reader connections cannot touch the file system (no read_csv('/etc/passwd'), no COPY
# TO, no ATTACH) and cannot turn that back on: the configuration is locked.
READER_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "lock_configuration": True,
}


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
        con = duckdb.connect(str(workspace.store_path))
        try:
            migrate(con)
            store = cls(workspace, con)
            yield store
            store.publish_snapshot()
        finally:
            con.close()

    def ingest_runs(self, run_dirs: Iterable[RunDir]) -> IngestStats:
        """Ingest these run directories (idempotent; see ``ingest``)."""
        return ingest(self.con, run_dirs)

    def ingest_all(self, experiment: str | None = None) -> IngestStats:
        """Ingest every run directory of the workspace (or of one experiment)."""
        return ingest(self.con, self.workspace.iter_run_dirs(experiment))

    def publish_snapshot(self) -> Path:
        """Checkpoint, then atomically replace the snapshot with a copy of the store.

        Safe to call often during a sweep: this connection is the only writer, and
        after CHECKPOINT the main file holds everything, so the copy is consistent.
        """
        self.con.execute("CHECKPOINT")
        return _publish_copy(self.workspace.store_path, self.workspace.snapshot_path)


def _publish_copy(source: Path, target: Path) -> Path:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _build_file(path: Path, run_dirs: Iterable[RunDir],
                studies_dir: Path | None = None) -> IngestStats:
    """Create a fresh, migrated, fully ingested DuckDB file at ``path``.

    ``studies_dir`` holds the search journals (their trials are rebuilt from them too).
    """
    con = duckdb.connect(str(path))
    try:
        migrate(con)
        stats = ingest(con, run_dirs)
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
    ``WorkspaceLocked`` is raised if another process holds it. Must not be called while
    this process has a ``Store.writer`` open (that connection would still see the old
    file).
    """
    if workspace.holds_lock():
        return _rebuild_locked(workspace)
    with workspace.lock():
        return _rebuild_locked(workspace)


def _rebuild_locked(workspace: Workspace) -> IngestStats:
    tmp = workspace.root / f".store.rebuild.{os.getpid()}.duckdb"
    tmp.unlink(missing_ok=True)
    try:
        stats = _build_file(tmp, workspace.iter_run_dirs(), workspace.root / "studies")
        # A WAL left by a crashed writer belongs to the OLD file; replaying it into the
        # new one would corrupt it.
        Path(f"{workspace.store_path}.wal").unlink(missing_ok=True)
        os.replace(tmp, workspace.store_path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    _publish_copy(workspace.store_path, workspace.snapshot_path)
    return stats


def refresh(workspace: Workspace) -> bool:
    """If no one holds the lock, ingest every run directory and publish a snapshot.

    Returns False (doing nothing) when the lock is held elsewhere, i.e. a sweep runs
    and keeps the snapshot fresh itself, or when the workspace does not exist.
    """
    if not workspace.root.is_dir():
        return False  # no workspace here: reading must not create one
    handle = workspace.try_lock()
    if handle is None:
        return False
    try:
        with Store.writer(workspace) as store:
            store.ingest_all()
    finally:
        handle.release()
    return True


def open_reader(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the freshest store readable without waiting.

    Never fails with a lock error: refreshes the store when the workspace is idle, else
    reads the running sweep's snapshot, else (no snapshot published yet) a private copy
    built from the run directories. External access is disabled on the connection.
    Close it when done.
    """
    refresh(workspace)
    if workspace.snapshot_path.exists():
        return duckdb.connect(str(workspace.snapshot_path), read_only=True, config=READER_CONFIG)
    return _private_copy(workspace)


def _private_copy(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    """Build a throw-away store from the run directories and open it read-only.

    A file, not an in-memory DB, so the connection is read-only like every other
    reader's. The file is unlinked once open: POSIX keeps it alive until closed.
    """
    tmpdir = Path(tempfile.mkdtemp(prefix="ftsweep-reader-"))
    path = tmpdir / "store.duckdb"
    try:
        _build_file(path, workspace.iter_run_dirs())
        return duckdb.connect(str(path), read_only=True, config=READER_CONFIG)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


__all__ = [
    "READER_CONFIG",
    "Store",
    "StoreError",
    "WorkspaceLocked",
    "open_reader",
    "rebuild",
    "refresh",
]
