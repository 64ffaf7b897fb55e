"""What went wrong with a store file, in words: damaged, or the disk is full.

DuckDB reports both as ``IOException`` text, and a failed write can hide its cause: once
an I/O error has ended a transaction, the ``ROLLBACK`` in our ``except`` raises "cannot
rollback - no transaction is active", and that is what the user saw ("disk full" was in
the exception it replaced). ``rollback_quietly`` keeps the first error; ``no_space``
and ``damaged`` look through an exception's whole chain.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ftsweep.store.migrations import StoreError

# Texts of DuckDB errors that mean the file itself is not a readable database (a torn
# copy, garbage, a bad block), as opposed to a lock held elsewhere.
_DAMAGE = (
    "not a valid DuckDB database",
    "Could not read enough bytes",
    "Corrupt database",
    "corrupt",
    "checksum",
    "replaying WAL",
    "Failed to load metadata",
)
_NO_SPACE = ("No space left on device", "Disk quota exceeded", "ENOSPC")


class DamagedStore(StoreError):
    """A store or snapshot file that DuckDB cannot read. The run directories hold
    everything it held, so it can be rebuilt; a reader says how (exit code 2)."""

    exit_code = 2

    def __init__(self, path: Path, detail: str):
        self.path, self.detail = path, detail
        super().__init__(
            f"the store file {path} is damaged ({detail}); the run directories hold "
            "everything it held: `ftsweep ingest --rebuild` rebuilds it from them (and "
            "`ftsweep launch` moves a damaged store aside and rebuilds it by itself)"
        )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def no_space(exc: BaseException) -> bool:
    """Whether a disk (or quota) ran full anywhere in this exception's chain."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(e) for text in _NO_SPACE):
            return True
    return False


def damaged(exc: BaseException) -> bool:
    """Whether DuckDB said the file itself cannot be read (not a lock, not a full disk)."""
    if no_space(exc):
        return False
    return any(
        isinstance(e, duckdb.Error) and any(t in str(e) for t in _DAMAGE) for e in _chain(exc)
    )


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK without replacing the error being handled: after an I/O error DuckDB may
    already have ended the transaction, and its "cannot rollback" would hide the cause."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
