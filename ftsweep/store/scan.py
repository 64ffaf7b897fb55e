"""What changed in the run directories since the store last looked: stat only, no parsing.

The store keeps a watermark per run directory (table ``_ingest_state``, one row per
run directory): a signature of its small JSON files (spec, result, failure, launch,
provenance, heartbeat: size, mtime and inode of each), and for each append-only log
(metrics.jsonl, evals.jsonl) its identity (device:inode), the size and mtime seen, the
bytes and lines consumed up to the last complete line, and a fingerprint of that line.

``diff`` compares a ``scan`` with those watermarks and says, per run, what to do:

* a log whose identity is unchanged, that only grew, and whose bytes just before the
  watermark still hold the last line consumed, is read from the watermark on
  ("append"); anything else that changed it (replaced, truncated, rewritten in place)
  makes the whole log be read again ("full"), and its old rows go;
* a run whose small files changed gets its ``runs`` / ``evals`` rows recomputed, and so
  does a run the store last saw running (its heartbeat may have gone stale since);
* a watermark whose run directory is gone (or lost its spec.json) is "deleted".

This module imports neither duckdb nor pyarrow: readers use it to decide, in a few
milliseconds, whether the published snapshot is current.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftsweep.rundir import (
    EVALS,
    FAILURE,
    HEARTBEAT,
    HEARTBEAT_STALE_S,
    LAUNCH,
    METRICS,
    PROVENANCE,
    RESULT,
    SPEC,
    RunDir,
)

SMALL_FILES = (SPEC, RESULT, FAILURE, LAUNCH, PROVENANCE, HEARTBEAT)
LOGS = {"metrics": METRICS, "evals": EVALS}
_WANTED = frozenset((*SMALL_FILES, *LOGS.values()))


@dataclass(frozen=True)
class LogStat:
    ident: str  # "device:inode": a replaced file is a different file
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class RunFiles:
    """One run directory as ``stat`` sees it."""

    key: str  # "<experiment dir>/<run dir>", relative to runs/ (absolute if outside it)
    dir: str
    small_sig: str  # "d<directory mtime>|" then size:mtime:inode of each small file
    logs: Mapping[str, LogStat | None]
    heartbeat_mtime: float | None

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def run_dir(self) -> RunDir:
        return RunDir(self.path)


@dataclass(frozen=True)
class Watermark:
    """What the store consumed of one log (the ``<log>_*`` columns of ``_ingest_state``)."""

    ident: str | None = None
    size: int = 0
    mtime_ns: int = 0
    bytes: int = 0
    lines: int = 0
    tail: str | None = None  # line_fingerprint() of the last complete line consumed


@dataclass
class RunChange:
    files: RunFiles
    state: Mapping[str, Any] | None  # the run's _ingest_state row, None if new
    run_row: bool  # recompute runs + evals rows
    logs: dict[str, str] = field(default_factory=dict)  # log -> "append" | "full"

    @property
    def is_new(self) -> bool:
        return self.state is None


@dataclass
class Changes:
    changed: list[RunChange] = field(default_factory=list)
    deleted: list[Mapping[str, Any]] = field(default_factory=list)  # state rows

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted)

    def summary(self) -> str:
        new = sum(1 for c in self.changed if c.is_new)
        parts = [f"{new} new", f"{len(self.changed) - new} changed", f"{len(self.deleted)} deleted"]
        return ", ".join(parts) + " run(s)"


def run_key(runs_dir: Path, path: Path) -> str:
    try:
        rel = path.relative_to(runs_dir)
    except ValueError:
        return str(path.resolve())
    return rel.as_posix()


def _stat_log(path: str) -> LogStat | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return LogStat(f"{st.st_dev}:{st.st_ino}", st.st_size, st.st_mtime_ns)


def _stat_run(key: str, path: str, dir_mtime_ns: int, known_sig: str | None) -> RunFiles | None:
    """Stat one run directory. With ``known_sig`` (the watermark's) and a directory mtime
    that still matches it, the small files are taken as unchanged without a stat each:
    workers and the launcher replace them by rename, which changes the directory's
    mtime. Only the two logs, which grow in place, are stat'ed then."""
    prefix = f"d{dir_mtime_ns}|"
    if known_sig is not None and known_sig.startswith(prefix):
        logs = {log: _stat_log(f"{path}/{name}") for log, name in LOGS.items()}
        return RunFiles(key, path, known_sig, logs, dir_mtime_ns / 1e9)
    stats: dict[str, os.stat_result] = {}
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name in _WANTED:
                    try:
                        stats[entry.name] = entry.stat()
                    except FileNotFoundError:  # replaced between listing and stat
                        continue
    except (FileNotFoundError, NotADirectoryError):
        return None
    if SPEC not in stats:
        return None  # not a run (yet): the launcher writes spec.json first
    sig = prefix + ";".join(
        f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        for name in SMALL_FILES
        if (st := stats.get(name)) is not None
    )
    logs = {
        log: LogStat(f"{st.st_dev}:{st.st_ino}", st.st_size, st.st_mtime_ns)
        if (st := stats.get(name)) is not None
        else None
        for log, name in LOGS.items()
    }
    hb = stats.get(HEARTBEAT)
    return RunFiles(key, path, sig, logs, hb.st_mtime if hb else None)


def _subdirs(path: str) -> list[tuple[str, str, int]]:
    """(name, path, mtime_ns) of the directories in ``path``, sorted by name."""
    out = []
    try:
        with os.scandir(path) as entries:
            for e in entries:
                try:
                    if e.is_dir():
                        out.append((e.name, e.path, e.stat().st_mtime_ns))
                except FileNotFoundError:
                    continue
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(out)


def scan(
    runs_dir: Path,
    experiment_dir: str | None = None,
    known: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[RunFiles]:
    """Every run directory (with a spec.json) under ``runs_dir``, sorted by key.

    ``known``: watermarks by key, for the quick check of ``_stat_run`` (readers). The
    writer scans without it, so a file rewritten in place is also noticed.
    """
    if experiment_dir is not None:
        parents = [(experiment_dir, str(runs_dir / experiment_dir))]
    else:
        parents = [(name, path) for name, path, _ in _subdirs(str(runs_dir))]
    out = []
    for parent, parent_path in parents:
        for name, path, mtime in _subdirs(parent_path):
            key = f"{parent}/{name}"
            state = known.get(key) if known is not None else None
            files = _stat_run(key, path, mtime, state.get("small_sig") if state else None)
            if files is not None:
                out.append(files)
    return out


def scan_dirs(runs_dir: Path, paths: Iterable[Path]) -> tuple[list[RunFiles], list[str]]:
    """Scan given run directories; also return the keys of those that are not runs."""
    found, gone = [], []
    for path in paths:
        key = run_key(runs_dir, path)
        try:
            mtime = os.stat(path).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            files = None
        else:
            files = _stat_run(key, str(path), mtime, None)
        if files is None:
            gone.append(key)
        else:
            found.append(files)
    return found, gone


def watermark(state: Mapping[str, Any] | None, log: str) -> Watermark:
    if state is None or state.get(f"{log}_ident") is None:
        return Watermark()
    return Watermark(
        state[f"{log}_ident"],
        state[f"{log}_size"],
        state[f"{log}_mtime_ns"],
        state[f"{log}_bytes"],
        state[f"{log}_lines"],
        state[f"{log}_tail"],
    )


def line_fingerprint(line: bytes) -> str:
    """ "<length>:<sha256>" of a log line with its newline."""
    return f"{len(line)}:{hashlib.sha256(line).hexdigest()}"


def _tail_matches(path: str, mark: Watermark) -> bool:
    """Do the bytes just before the watermark still hold the last line consumed?"""
    if mark.tail is None:
        return mark.bytes == 0
    try:
        length = int(mark.tail.split(":", 1)[0])
        with open(path, "rb") as fh:
            fh.seek(mark.bytes - length)
            return line_fingerprint(fh.read(length)) == mark.tail
    except (OSError, ValueError):
        return False


def log_action(path: str, now: LogStat | None, mark: Watermark) -> str | None:
    """None (nothing to read), "append" (from the watermark on) or "full"."""
    if now is None:
        return "full" if mark.ident is not None else None
    if mark.ident is None:
        return "full"
    if now.ident != mark.ident or now.size < mark.bytes:
        return "full"
    if now.size == mark.size and now.mtime_ns == mark.mtime_ns:
        return None
    return "append" if _tail_matches(path, mark) else "full"


def diff(
    files: Iterable[RunFiles],
    states: Mapping[str, Mapping[str, Any]],
    gone: Iterable[str] = (),
    *,
    now: float | None = None,
    recheck_running: bool = True,
) -> Changes:
    """Compare scanned run directories with the store's watermarks (keyed by run key).

    ``gone``: keys known to be deleted. With ``recheck_running`` every run the store
    saw running gets its row recomputed (the writer does that: cheap, and exactly what
    a rebuild would say now); without it, only those whose heartbeat file is older
    than the staleness limit (a reader deciding whether the snapshot is current).
    """
    now = time.time() if now is None else now
    changes = Changes()
    seen = set()
    for f in files:
        seen.add(f.key)
        state = states.get(f.key)
        running = state is not None and state.get("status") == "running"
        stale_hb = f.heartbeat_mtime is not None and now - f.heartbeat_mtime > HEARTBEAT_STALE_S
        run_row = (
            state is None
            or state.get("small_sig") != f.small_sig
            or (running and (recheck_running or stale_hb))
        )
        logs = {}
        for log, name in LOGS.items():
            action = log_action(f"{f.dir}/{name}", f.logs[log], watermark(state, log))
            if action is not None:
                logs[log] = action
        if run_row or logs:
            changes.changed.append(RunChange(f, state, run_row, logs))
    for key in gone:
        if key in states and key not in seen:
            changes.deleted.append(states[key])
    return changes


def deleted_keys(
    states: Mapping[str, Any], files: Iterable[RunFiles], prefix: str | None
) -> list[str]:
    """Watermarked keys (under ``prefix/`` if given) with no run directory any more."""
    present = {f.key for f in files}
    # An absolute key is a run directory outside runs/ (given to ``ingest`` by path):
    # a scan of runs/ says nothing about it.
    return [
        k
        for k in states
        if k not in present
        and not k.startswith("/")
        and (prefix is None or k.startswith(prefix + "/"))
    ]
