"""Publishing the store to readers: snapshot generations updated in place, one symlink.

DuckDB lets one process write a file, and a reader's read-only open takes a shared lock
that makes a writer's open fail, so readers never open ``store.duckdb``. They open the
published snapshot::

    store.snapshot.duckdb -> snapshots/store.<n>.duckdb    a symlink, swapped atomically
    snapshots/store.<n>.duckdb                             up to MAX_GENERATIONS copies

Copying the whole store at every publish costs O(store size) (a second per few hundred
MB), too slow after every finished run. Instead ``publish`` brings a generation that is
NOT the published one, and that no reader holds, up to date from the store: only the
runs whose ``_ingest_state.version`` is newer than the generation's (deleted runs
included), and every other table (migrations, trials) whole. Then it points the symlink
at it. A reader holding the old generation keeps reading it, unchanged. When no
generation can be updated (none yet, all held, a rebuild gave the store a new
``store_id``, a schema change), one is written by copying the store's file; a file being
replaced under a reader is safe (POSIX keeps the reader's inode).

A reader that resolved the symlink just before a switch may find that generation being
updated (locked): it resolves again and opens the new one (``open_published``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb

from ftsweep.store.health import DamagedStore, damaged, first_line, rollback_quietly
from ftsweep.store.state import TABLES, run_filters
from ftsweep.workspace import Workspace

MAX_GENERATIONS = 3
SNAPSHOT_DIR = "snapshots"
_INTERNAL = ("_ingest_state", "_store_meta")
_ALIAS = "_snap"

# Reader connections cannot touch the file system (no read_csv('/etc/passwd'), no COPY
# TO, no ATTACH) and cannot turn that back on: the configuration is locked.
READER_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "lock_configuration": True,
}


def connect_reader(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection with READER_CONFIG (and no progress bar in the output)."""
    con = duckdb.connect(
        str(path),
        read_only=True,
        config={k: v for k, v in READER_CONFIG.items() if k != "lock_configuration"},
    )
    try:
        # Per connection, so it must be set before the configuration is locked; another
        # connection of this process to the same file shares that (locked) database:
        # then only the progress bar stays on.
        con.execute("SET enable_progress_bar = false")
        con.execute("SET lock_configuration = true")
    except duckdb.InvalidInputException as exc:
        if "locked" not in str(exc):
            con.close()
            raise
    return con


def generations(workspace: Workspace) -> list[Path]:
    folder = workspace.root / SNAPSHOT_DIR
    return sorted(folder.glob("store.*.duckdb")) if folder.is_dir() else []


def published(workspace: Workspace) -> Path | None:
    """The generation readers get now (the snapshot file itself if it is not a link)."""
    link = workspace.snapshot_path
    try:
        return Path(os.path.realpath(link)) if link.exists() else None
    except OSError:
        return None


def open_published(workspace: Workspace, wait_s: float = 10.0) -> duckdb.DuckDBPyConnection | None:
    """A read-only connection to the published snapshot; None if none was published."""
    deadline = time.monotonic() + wait_s
    while True:
        target = published(workspace)
        if target is None:
            return None
        try:
            return connect_reader(target)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if damaged(exc):  # not a race with the writer: waiting would not help
                raise DamagedStore(target, first_line(exc)) from exc
            # The writer is updating the generation we resolved a moment before it was
            # switched away from: resolve again.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _meta(con: duckdb.DuckDBPyConnection, db: str) -> tuple[str, int, frozenset[str]] | None:
    try:
        row = con.execute(f"SELECT store_id, version FROM {db}._store_meta").fetchone()
        names = con.execute(f"SELECT name FROM {db}.migrations").fetchall()
    except duckdb.CatalogException:
        return None
    return (str(row[0]), int(row[1]), frozenset(n for (n,) in names)) if row else None


def _tables(con: duckdb.DuckDBPyConnection, db: str) -> list[str]:
    # The store's own database is named after its file; "main" is its default schema.
    where = "current_database()" if db == "main" else "?"
    rows = con.execute(
        f"SELECT table_name FROM duckdb_tables() WHERE database_name = {where} "
        "AND schema_name = 'main'",
        [] if db == "main" else [db],
    ).fetchall()
    return sorted(r[0] for r in rows)


def _sync(con: duckdb.DuckDBPyConnection) -> bool:
    """Bring the attached generation up to date with the store; False if it cannot be."""
    mine, theirs = _meta(con, "main"), _meta(con, _ALIAS)
    if mine is None or theirs is None or mine[0] != theirs[0] or mine[2] != theirs[2]:
        return False
    if theirs[1] == mine[1]:
        return True
    v, s = theirs[1], _ALIAS
    if _tables(con, "main") != _tables(con, s):
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        changed = con.execute(
            f"""
            SELECT key, run_id FROM main._ingest_state WHERE version > $v
            UNION SELECT t.key, t.run_id FROM {s}._ingest_state t
              LEFT JOIN main._ingest_state m ON t.key = m.key WHERE m.key IS NULL OR m.version > $v
            """,
            {"v": v},
        ).fetchall()
        keys, ids = [k for k, _ in changed], [r for _, r in changed]
        held = [
            r
            for (r,) in con.execute(
                f"SELECT run_id FROM {s}._ingest_state WHERE list_contains(?, key)", [keys]
            ).fetchall()
        ]
        for table in TABLES:
            for where in run_filters(held):
                con.execute(f"DELETE FROM {s}.{table} WHERE {where}")
            for where in run_filters(ids):
                con.execute(f"INSERT INTO {s}.{table} SELECT * FROM main.{table} WHERE {where}")
        con.execute(f"DELETE FROM {s}._ingest_state WHERE list_contains(?, key)", [keys])
        con.execute(
            f"INSERT INTO {s}._ingest_state SELECT * FROM main._ingest_state WHERE version > ?", [v]
        )
        for table in _tables(con, "main"):
            if table not in TABLES and table not in _INTERNAL:
                con.execute(f"DELETE FROM {s}.{table}")
                con.execute(f"INSERT INTO {s}.{table} SELECT * FROM main.{table}")
        con.execute(f"UPDATE {s}._store_meta SET version = ?", [mine[1]])
        con.execute("COMMIT")
    except BaseException:
        rollback_quietly(con)  # keeps the real error (a full disk), see health.py
        raise
    return True


def _update_in_place(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    try:
        con.execute(f"ATTACH '{_sql_path(path)}' AS {_ALIAS}")
    except duckdb.Error:
        return False  # a reader holds it (or it is not a DuckDB file): not this one
    try:
        ok = _sync(con)
        if ok:
            con.execute(f"CHECKPOINT {_ALIAS}")
        return ok
    finally:
        con.execute(f"DETACH {_ALIAS}")


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _point(workspace: Workspace, target: Path) -> None:
    link = workspace.snapshot_path
    tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def publish(con: duckdb.DuckDBPyConnection, workspace: Workspace) -> Path:
    """Make the store's current contents what readers open next; return that file.

    ``con`` is the writer's connection to ``workspace.store_path`` (lock holder only).
    """
    folder = workspace.root / SNAPSHOT_DIR
    folder.mkdir(exist_ok=True)
    current = published(workspace)
    gens = generations(workspace)
    others = [g for g in gens if g != current]
    # The freshest first: it has the fewest runs to catch up (two generations alternate;
    # a third appears only while readers hold both).
    for gen in sorted(others, key=lambda g: g.stat().st_mtime, reverse=True):
        if _update_in_place(con, gen):
            _point(workspace, gen)
            return gen
    if len(gens) < MAX_GENERATIONS:
        used = {g.name for g in gens}
        target = next(
            folder / f"store.{i}.duckdb"
            for i in range(len(gens) + 1)
            if f"store.{i}.duckdb" not in used
        )
    else:  # all held or unusable: replace the stalest one (its readers keep their copy)
        target = min(others, key=lambda g: g.stat().st_mtime)
    con.execute("CHECKPOINT")  # the file alone must hold everything before it is copied
    _copy(workspace.store_path, target)
    _point(workspace, target)
    return target


__all__ = [
    "MAX_GENERATIONS",
    "READER_CONFIG",
    "connect_reader",
    "generations",
    "open_published",
    "publish",
    "published",
]
