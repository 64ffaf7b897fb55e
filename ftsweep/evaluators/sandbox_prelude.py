"""Bootstrap that runs inside the sandbox process, before the untrusted program.

``sandbox.run_python`` starts it as ``python -I -S -B sandbox_prelude.py CONFIG_JSON``
with the sandbox directory as the working directory. It

1. reads the program while nothing is restricted yet,
2. lowers its own resource limits, soft and hard (see ``_apply_limits`` for why
   here and not in a ``preexec_fn``),
3. replaces the few dangerous functions that raise no audit event,
4. installs an audit hook that refuses process creation, signals to other
   processes, networking, ctypes, tracing, and writes outside the sandbox dir,
5. runs the program; exiting before the end counts as failure.

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
    }
)
_BLOCKED_PREFIXES = ("socket.", "subprocess.", "ctypes.", "pty.", "readline.")
# Replacing the hook's code or defaults would disarm it. Setting __defaults__ to
# None counts as deleting it, hence both events.
_ATTR_EVENTS = frozenset({"object.__setattr__", "object.__delattr__"})
_BLOCKED_SETATTR = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
# Fresh copies of these would bring back the functions stubbed out below.
_BLOCKED_IMPORTS = frozenset({"posix", "_posixsubprocess"})
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


def _apply_limits(config: dict[str, int]) -> None:
    """Lower this process's limits, soft and hard, before any untrusted code runs.

    Doing it here rather than in Popen's ``preexec_fn`` keeps the parent free to
    start sandboxes from a thread pool (``preexec_fn`` is documented as unsafe with
    threads), and the effect is the same: the untrusted code starts already limited.
    """
    wanted = (
        (resource.RLIMIT_AS, config["memory_bytes"]),
        (resource.RLIMIT_CPU, config["cpu_seconds"]),
        (resource.RLIMIT_FSIZE, config["file_bytes"]),
        (resource.RLIMIT_NOFILE, config["open_files"]),
        # Counted per user, so 0 means "no new processes or threads" (root is exempt,
        # which is why process creation is also refused by the audit hook).
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_CORE, 0),
    )
    for limit, value in wanted:
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # an unprivileged process cannot raise its hard limit
        resource.setrlimit(limit, (value, value))


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
        if not flags & _wflags or _isinstance(path, _int):
            return  # reads are allowed; an int "path" wraps an fd that is already open
        text = _plain(path)
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
        elif event == "import" and _plain(args[0]) in _imports:
            raise _deny(f"sandbox: importing {_plain(args[0])} again is not allowed")

    return hook


def main() -> None:
    config = json.loads(sys.argv[1])
    root = config["root"]
    if os.getcwd() != root:
        raise SystemExit(f"sandbox: started in {os.getcwd()!r}, expected {root!r}")
    with open(config["program"], "rb") as file:
        source = file.read()
    _apply_limits(config)
    _stub_unaudited()
    sys.addaudithook(_make_hook(root))
    # Compiled under the limits: a huge program is the untrusted code's problem.
    code = compile(source, config["program"], "exec")
    # Not "__main__": an `if __name__ == "__main__":` block in a generated solution
    # would otherwise run (and often wait on input or exit), as in HumanEval's harness.
    namespace: dict[str, Any] = {"__name__": "__sandbox__"}
    try:
        exec(code, namespace)
    except SystemExit as exc:
        # sys.exit(0) before the asserts ran must not count as passing.
        raise SystemExit(
            f"sandbox: the program exited (code {exc.code!r}) before its tests finished"
        ) from None


if __name__ == "__main__":
    main()
