"""Bootstrap that runs inside the sandbox process, before the untrusted program.

``sandbox.run_python`` starts it as ``python -I -S -B -c <this source> JOB_FD REPORT_FD``
with the scratch directory as the working directory. It

1. reads its job (program, tests, one nonce per test plus one for the end, limits)
   from JOB_FD and closes it: the nonces are then in this process's memory only;
2. writes ``ready`` to REPORT_FD, so the harness can tell a sandbox that did not
   start from a program that failed;
3. lowers its own resource limits, soft and hard (see ``_apply_limits``);
4. unless the job says otherwise, replaces the few dangerous functions that raise no
   audit event and installs an audit hook that refuses process creation, signals,
   networking, ctypes, tracing, object-graph walks, and writes outside the scratch
   dir;
5. runs the program, then each test statement; after each test that completes it
   writes that test's nonce to REPORT_FD, and after the last one the end nonce.

Stdlib only, and it must stay importable without side effects: ftsweep never imports
it, but tools (pytest, mypy) may. See ``sandbox.py`` for what this does and does not
protect against.
"""

from __future__ import annotations

import _posixsubprocess
import json
import os
import posix
import resource
import sys
from collections.abc import Callable
from typing import Any

# Audit events refused outright. Event names are from the CPython audit events table.
_BLOCKED_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.spawn",
        "os.posix_spawn",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "os.startfile",
        "shutil.rmtree",
        "os.symlink",
        "os.link",
        # With the working directory fixed, a relative path always means the sandbox dir.
        "os.chdir",
        "resource.setrlimit",
        "resource.prlimit",
        # Tracing hands out frames and could skip the test asserts.
        "sys.settrace",
        "sys.setprofile",
        "sqlite3.enable_load_extension",
        "sqlite3.load_extension",
        "webbrowser.open",
        "urllib.Request",
        # Walking the object graph finds the harness's nonces (see sandbox.py).
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sys._current_frames",
    }
)
_BLOCKED_PREFIXES = ("socket.", "subprocess.", "ctypes.", "pty.", "readline.")
# Replacing the hook's code or defaults would disarm it. Setting __defaults__ to
# None counts as deleting it, hence both events.
_ATTR_EVENTS = frozenset({"object.__setattr__", "object.__delattr__"})
_BLOCKED_SETATTR = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
# Fresh copies of these would bring back the functions stubbed out below. A copy
# loaded under another name ("x._posixsubprocess") is caught by the last part of its
# name or by the file it comes from.
_BLOCKED_IMPORTS = frozenset({"posix", "_posixsubprocess"})
_BLOCKED_FILES = ("_posixsubprocess.", "posix.")
# Events that change the filesystem: (event, positions of paths, positions of dir_fds).
_PATH_EVENTS = (
    ("os.remove", (0,), (1,)),
    ("os.rmdir", (0,), (1,)),
    ("os.rename", (0, 1), (2, 3)),
    ("os.mkdir", (0,), (2,)),
    ("os.chmod", (0,), (2,)),
    ("os.chown", (0,), (3,)),
    ("os.utime", (0,), (3,)),
    ("os.truncate", (0,), ()),
    ("os.setxattr", (0,), ()),
    ("os.removexattr", (0,), ()),
    ("sqlite3.connect", (0,), ()),
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _apply_limits(limits: dict[str, int]) -> None:
    """Lower this process's limits, soft and hard, before any untrusted code runs.

    Doing it here rather than in Popen's ``preexec_fn`` keeps the parent free to
    start sandboxes from a thread pool (``preexec_fn`` is documented as unsafe with
    threads), and the effect is the same: the untrusted code starts already limited.
    """
    processes = limits["processes"]
    wanted = (
        (resource.RLIMIT_AS, limits["memory_bytes"]),
        (resource.RLIMIT_CPU, limits["cpu_seconds"]),
        (resource.RLIMIT_FSIZE, limits["file_bytes"]),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        # Counted per user, so 0 means "no new processes or threads". Under bwrap the
        # user is nobody in a namespace of its own, so the count is this sandbox's;
        # the kernel never enforces it for root (layer 2's hook refuses forks too).
        (resource.RLIMIT_NPROC, _own_processes() + processes if processes else 0),
        (resource.RLIMIT_CORE, 0),
    )
    for limit, value in wanted:
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # an unprivileged process cannot raise its hard limit
        resource.setrlimit(limit, (value, value))


def _own_processes() -> int:
    """Processes and threads of this process's real uid (RLIMIT_NPROC counts them)."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as file:
                    fields = dict(line.split(":", 1) for line in file if ":" in line)
            except OSError:
                continue  # exited meanwhile
            if int(fields.get("Uid", "-1 ").split()[0]) == uid:
                count += int(fields.get("Threads", "1"))
    return count


def _stub_unaudited() -> None:
    """Replace functions that can escape or fake success but raise no audit event."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError("sandbox: not allowed")

    # The fork underneath subprocess; Popen is audited, this is not.
    setattr(_posixsubprocess, "fork_exec", refuse)  # noqa: B010 - a module, not a typo
    for module in (os, posix):
        # os._exit(0) would end the program with "success" before the tests ran.
        setattr(module, "_exit", refuse)  # noqa: B010
        # A device node made inside the sandbox dir could then be opened for writing.
        setattr(module, "mknod", refuse)  # noqa: B010
        setattr(module, "mkfifo", refuse)  # noqa: B010


# The hook and its helpers keep all their state, and every builtin they call, in
# default arguments bound at creation: modules that untrusted code can reach
# (builtins, os, posixpath) could be patched to lie, while a function's defaults and
# code cannot be replaced (those attribute events are refused).


def _plain(
    path: object, _isinstance: Any = isinstance, _str: Any = str, _bytes: Any = bytes
) -> str | None:
    """An exact str for a str or bytes path (a subclass could override ==), else None."""
    if _isinstance(path, _bytes):
        return _bytes.decode(path, "utf-8", "surrogateescape")
    if _isinstance(path, _str):
        return _str.__str__(path)
    return None  # PathLike: its __fspath__ is untrusted code, so it is not resolved


def _make_path_check(root: str) -> Callable[[object], bool]:
    """A function telling whether a path lies inside ``root``.

    The check is lexical. Symlinks cannot fool it because none can be created inside
    the sandbox (os.symlink is refused) and ``root`` is already resolved; relative
    paths mean ``root`` because os.chdir is refused.
    """

    def inside(path: object, _root: str = root, _plain: Any = _plain) -> bool:
        text = _plain(path)
        if text is None:
            return False
        if not text.startswith("/"):
            text = _root + "/" + text
        parts: list[str] = []
        for part in text.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        normal = "/" + "/".join(parts)
        return normal == _root or normal.startswith(_root + "/")

    return inside


def _make_open_check(inside: Callable[[object], bool]) -> Callable[[tuple[Any, ...]], None]:
    """The check for the "open" event: writes only inside the sandbox dir."""

    def check_open(
        args: tuple[Any, ...],
        _inside: Any = inside,
        _plain: Any = _plain,
        _isinstance: Any = isinstance,
        _int: Any = int,
        _wflags: Any = _WRITE_FLAGS,
        _deny: Any = PermissionError,
    ) -> None:
        path, mode, flags = args
        if _isinstance(path, _int):
            return  # an int "path" wraps an fd that is already open
        text = _plain(path)
        if text is not None and text.startswith("/proc/") and text.endswith("/mem"):
            raise _deny("sandbox: reading process memory is not allowed")
        if not flags & _wflags:
            return  # other reads are allowed
        if text == "/dev/null":
            return
        # os.open (mode None) may be relative to a dir_fd that the event does not show.
        if text is None or (mode is None and not text.startswith("/")) or not _inside(text):
            raise _deny(f"sandbox: opening {text or path!r} for writing is not allowed")

    return check_open


def _make_path_event_check(
    inside: Callable[[object], bool],
) -> Callable[[str, tuple[Any, ...]], None]:
    """The check for events that change the filesystem (see _PATH_EVENTS)."""

    def check_paths(
        event: str,
        args: tuple[Any, ...],
        _inside: Any = inside,
        _plain: Any = _plain,
        _table: Any = _PATH_EVENTS,
        _isinstance: Any = isinstance,
        _int: Any = int,
        _deny: Any = PermissionError,
    ) -> None:
        for name, paths, dir_fds in _table:
            if name != event:
                continue
            for i in dir_fds:  # a loop, not any(): builtins can be patched
                if args[i] is not None and args[i] != -1:
                    raise _deny(f"sandbox: {event} with dir_fd is not allowed")
            for i in paths:
                if _isinstance(args[i], _int) or _plain(args[i]) == ":memory:":
                    continue  # an open fd, or sqlite's in-memory database
                if not _inside(args[i]):
                    raise _deny(f"sandbox: {event} on {_plain(args[i])!r} is not allowed")

    return check_paths


def _make_hook(root: str) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook: refuse the listed events and writes outside ``root``."""
    inside = _make_path_check(root)
    check_open = _make_open_check(inside)
    check_paths = _make_path_event_check(inside)
    path_events = frozenset(event for event, _, _ in _PATH_EVENTS)

    def hook(
        event: str,
        args: tuple[Any, ...],
        _check_open: Any = check_open,
        _check_paths: Any = check_paths,
        _path_events: Any = path_events,
        _blocked: Any = _BLOCKED_EVENTS,
        _prefixes: Any = _BLOCKED_PREFIXES,
        _setattr: Any = _BLOCKED_SETATTR,
        _imports: Any = _BLOCKED_IMPORTS,
        _files: Any = _BLOCKED_FILES,
        _attr_events: Any = _ATTR_EVENTS,
        _plain: Any = _plain,
        _str: Any = str,
        _deny: Any = PermissionError,
    ) -> None:
        if event in _blocked or _str.startswith(event, _prefixes):
            raise _deny(f"sandbox: {event} is not allowed")
        if event == "open":
            _check_open(args)
        elif event in _path_events:
            _check_paths(event, args)
        elif event in _attr_events and _plain(args[1]) in _setattr:
            raise _deny(f"sandbox: changing {_plain(args[1])} is not allowed")
        elif event == "import":
            name = _plain(args[0]) or ""
            file = _plain(args[1]) or ""
            if _str.rpartition(name, ".")[2] in _imports or _str.startswith(
                _str.rpartition(file, "/")[2], _files
            ):
                raise _deny(f"sandbox: importing {name} again is not allowed")

    return hook


def _read_job(fd: int) -> dict[str, Any]:
    """The job, read to its end; the descriptor is closed so nothing can read it again."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    job: dict[str, Any] = json.loads(b"".join(chunks).decode("utf-8", "surrogatepass"))
    return job


def _make_reporter(fd: int, nonces: list[str]) -> Callable[[int], None]:
    """A function writing the i-th nonce to the report descriptor.

    Its state sits in default arguments, bound now: the program runs between the
    reports and could patch os.write or builtins.
    """
    lines = tuple((nonce + "\n").encode("ascii") for nonce in nonces)

    def report(
        i: int, _fd: int = fd, _lines: tuple[bytes, ...] = lines, _write: Any = os.write
    ) -> None:
        _write(_fd, _lines[i])

    return report


def _run(
    program: str,
    tests: tuple[str, ...],
    report: Callable[[int], None],
    _compile: Any = compile,
    _exec: Any = exec,
    _len: Any = len,
    _range: Any = range,
    _exit: Any = SystemExit,
) -> None:
    """Run the program, then each test; report each test that completes, then the end.

    Builtins are bound as defaults for the same reason as in the reporter, and the
    tests are a tuple: the program cannot swap a failing test for ``pass``.
    """
    # Not "__main__": an `if __name__ == "__main__":` block in a generated solution
    # would otherwise run (and often wait on input or exit), as in HumanEval's harness.
    namespace: dict[str, Any] = {"__name__": "__sandbox__"}
    try:
        # Compiled under the limits: a huge program is the untrusted code's problem.
        _exec(_compile(program, "<program>", "exec"), namespace)
        for i in _range(_len(tests)):
            _exec(_compile(tests[i], f"<test {i + 1}>", "exec"), namespace)
            report(i)
    except _exit as exc:
        # Exiting before the tests ran must not count as passing; the missing reports
        # already make sure of that, this only says why.
        raise _exit(
            f"sandbox: the program exited (code {exc.code!r}) before its tests finished"
        ) from None
    report(_len(tests))


def main() -> None:
    job = _read_job(int(sys.argv[1]))
    report_fd = int(sys.argv[2])
    report = _make_reporter(report_fd, job.pop("nonces"))
    os.write(report_fd, b"ready\n")
    scratch = job["scratch"]
    if os.getcwd() != scratch:
        raise SystemExit(f"sandbox: started in {os.getcwd()!r}, expected {scratch!r}")
    _apply_limits(job["limits"])
    if job["guard"]:
        _stub_unaudited()
        sys.addaudithook(_make_hook(scratch))
    _run(job.pop("program"), tuple(job.pop("tests")), report)


if __name__ == "__main__":
    main()
