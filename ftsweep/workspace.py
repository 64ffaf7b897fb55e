"""The workspace: where run directories, the DuckDB store and its snapshot live.

Layout of a workspace root (default ``.ftsweep`` in the current directory)::

    runs/<safe experiment>/<run_id>/   one RunDir per run (see ``ftsweep.rundir``)
    store.duckdb                       the store; written only by the lock holder
    store.snapshot.duckdb              symlink to the published snapshot; what readers open
    snapshots/store.<n>.duckdb         snapshot generations (ftsweep.store.snapshot)
    lock                               flock'ed by the one process allowed to write

Two safety contracts live here:

* user-supplied names never become paths unsanitised (DESIGN invariant 7):
  ``safe_name`` maps any experiment name to one harmless path component;
* one writer for DuckDB (invariant 3): ``lock``/``try_lock`` give an exclusive,
  inter-process, non-blocking lock. The kernel drops an flock when its holder dies,
  so a killed sweep never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftsweep.errors import FtsweepError
from ftsweep.rundir import RunDir

DEFAULT_ROOT = Path(".ftsweep")

# Characters kept as-is in a path component; everything else becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@-]")
_MAX_NAME = 100

# Roots whose lock this process holds, so ``holds_lock`` needs no syscall and a second
# try_lock in the same process fails instead of silently succeeding on a new descriptor.
_HELD: dict[Path, LockHandle] = {}


class WorkspaceLocked(FtsweepError):
    """Another process (or another handle in this one) holds the workspace lock."""


def _holder_record() -> dict[str, Any]:
    """Who holds the lock, for the humans and processes that wait for it."""
    command = (
        " ".join(["ftsweep", *sys.argv[1:]])
        if sys.argv and "ftsweep" in sys.argv[0]
        else " ".join(sys.argv)
    )
    command = "".join(c if c.isprintable() else "?" for c in command[:200])  # a terminal
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.time(),
        "command": command,
    }


def safe_name(name: str) -> str:
    """Map a user-supplied name to a single safe path component.

    Contract: the result is non-empty, contains only ``[A-Za-z0-9._+=@-]``, never
    starts with "." (so never ".", ".." or hidden), and is at most 100 characters.
    Names that are already safe map to themselves; any name that had to change gets a
    short hash of the original appended, so two different unsafe names ("a/b", "a:b")
    do not collide on the same directory.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    if cleaned == name and cleaned and len(cleaned) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    stem = cleaned[: _MAX_NAME - 9] or "unnamed"
    return f"{stem}-{digest}"


@dataclass
class LockHandle:
    """An acquired workspace lock; ``release`` (idempotent) gives it up.

    ``on_release`` callbacks run first, while the lock is still held (the store closes
    its writer connection there).
    """

    path: Path
    fd: int
    root: Path = field(repr=False)
    on_release: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            while self.on_release:
                self.on_release.pop()()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        try:
            os.ftruncate(self.fd, 0)  # holder pid is no longer true
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = -1
            _HELD.pop(self.root, None)


class Workspace:
    """Paths and the writer lock of one ftsweep workspace."""

    def __init__(self, root: Path | str = DEFAULT_ROOT):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def store_path(self) -> Path:
        return self.root / "store.duckdb"

    @property
    def snapshot_path(self) -> Path:
        return self.root / "store.snapshot.duckdb"

    @property
    def lock_path(self) -> Path:
        return self.root / "lock"

    @property
    def reports_dir(self) -> Path:
        """``reports/`` next to the workspace root (the cwd for the default root)."""
        return self.root.parent / "reports"

    def run_dir(self, experiment: str, run_id: str) -> RunDir:
        """The RunDir of one run; both names are sanitised into path components."""
        return RunDir(self.runs_dir / safe_name(experiment) / safe_name(run_id))

    def iter_run_dirs(self, experiment: str | None = None) -> Iterator[RunDir]:
        """Run directories that have a spec.json, in sorted (deterministic) order.

        With ``experiment`` only that experiment's directory is searched.
        """
        if experiment is not None:
            parents = [self.runs_dir / safe_name(experiment)]
        elif self.runs_dir.is_dir():
            parents = sorted(p for p in self.runs_dir.iterdir() if p.is_dir())
        else:
            parents = []
        for parent in parents:
            if not parent.is_dir():
                continue
            for path in sorted(parent.iterdir()):
                rd = RunDir(path)
                if path.is_dir() and rd.exists():
                    yield rd

    # -- the writer lock ------------------------------------------------------------

    def _key(self) -> Path:
        return self.root.resolve()

    def holds_lock(self) -> bool:
        """True if this process holds this workspace's lock."""
        return self._key() in _HELD

    def held_lock(self) -> LockHandle | None:
        """This process's handle on the lock, if it holds it."""
        return _HELD.get(self._key())

    def try_lock(self) -> LockHandle | None:
        """Take the exclusive lock without waiting; None if anyone else holds it.

        The holder's pid is written into the lock file for humans (``cat lock``); the
        flock itself, not the file's content, is what excludes other writers.
        """
        key = self._key()
        if key in _HELD:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder_record()).encode() + b"\n", 0)
        handle = LockHandle(self.lock_path, fd, key)
        _HELD[key] = handle
        return handle

    def lock_holder(self) -> dict[str, Any] | None:
        """What the current holder recorded: pid, host, since (epoch s), command."""
        try:
            text = self.lock_path.read_text().strip()
        except OSError:
            return None
        if text.isdigit():  # written by an older ftsweep: the pid alone
            return {"pid": int(text)}
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) and "pid" in record else None

    def lock_holder_pid(self) -> int | None:
        """The pid recorded by the current holder, if any (informational only)."""
        record = self.lock_holder()
        pid = record.get("pid") if record else None
        return pid if isinstance(pid, int) else None

    def describe_holder(self) -> str:
        """'pid 123 on host h since 07:30:12 (ftsweep launch x.yaml)', as far as known."""
        record = self.lock_holder() or {}
        if not record:
            return "another process"
        text = f"pid {record['pid']}"
        if record.get("host"):
            text += f" on {record['host']}"
        if isinstance(record.get("since"), int | float):
            text += " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["since"]))
        if record.get("command"):
            text += f" ({record['command']})"
        return text

    @contextmanager
    def lock(
        self, wait_s: float = 0.0, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[LockHandle]:
        """Hold the exclusive workspace lock for the ``with`` block.

        Waits up to ``wait_s`` seconds (readers hold it for a moment to refresh the
        store), then raises ``WorkspaceLocked`` if it is still held elsewhere. When it
        has to wait, ``on_wait`` is told at once whom it waits for.
        """
        deadline = time.monotonic() + wait_s
        handle = self.try_lock()
        if handle is None and on_wait is not None and wait_s > 0:
            on_wait(self.describe_holder())
        while handle is None and time.monotonic() < deadline:
            time.sleep(0.1)
            handle = self.try_lock()
        if handle is None:
            waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
            raise WorkspaceLocked(
                f"workspace {self.root} is locked by {self.describe_holder()}{waited} (a "
                "sweep is probably running); only the lock holder may write the store. "
                "`ftsweep status` shows its runs; `launch --wait SECONDS` waits longer"
            )
        try:
            yield handle
        finally:
            handle.release()
