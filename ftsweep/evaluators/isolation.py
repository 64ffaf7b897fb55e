"""How a sandboxed program is started: under bubblewrap, or (opted into) without it.

``bwrap`` (the default) runs the program under Debian's ``bubblewrap`` with its own
user, mount, PID, network, IPC, UTS and (where the kernel allows) cgroup namespaces:

* **user**: uid and gid 65534 (nobody) inside, no capabilities, no further user
  namespaces (``--disable-userns``). Started as root, the sandbox is also nobody
  *outside*: ``setpriv`` drops to 65534 before bwrap runs, so the kernel enforces
  RLIMIT_NPROC (it never does for root) and an escape from the namespaces would land
  as nobody. Started as another user, bwrap maps that user's uid to 65534 inside.
* **mount**: a root of its own holding only read-only binds of /usr, the interpreter's
  prefix and the loader cache, a fresh /proc (its PID namespace only), a minimal
  read-only /dev, and a private, size-limited tmpfs at /tmp, the working directory
  and the only writable place. Nothing of the host's /tmp, /home, /root, /etc or the
  workspace is visible.
* **PID**: the program is PID 2 under bwrap's init; it cannot see or signal any host
  process, and when the init dies the kernel kills everything left in the namespace.
* **network**: a namespace with only a loopback that is down: no connection anywhere.
* **IPC, UTS**: no shared memory or semaphores with the host; hostname ``sandbox``.
* **environment**: cleared (``--clearenv``), PATH=/usr/bin:/bin only; bwrap itself is
  started with the same two variables, so /proc/1/environ holds nothing either.
* ``--new-session`` (no TIOCSTI into a terminal), ``--die-with-parent``.

As root, the interpreter may live where nobody cannot reach it (a pyenv under /root):
its prefix is first bind-mounted onto a staging tmpfs in a private mount namespace
(``unshare --mount``, never visible to the host), from where bwrap binds it.

``none`` runs the same prelude as a plain child process of this one: resource limits
and the in-process audit hook only. It exists for machines without user namespaces
and must be asked for explicitly (``sandbox: none``); its scores are marked.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Literal

Isolation = Literal["bwrap", "none"]
ISOLATIONS: tuple[Isolation, ...] = ("bwrap", "none")
SANDBOX_UID = 65534  # "nobody" on Debian, Ubuntu, Fedora, Arch
INNER_PATH = "/usr/bin:/bin"
SCRATCH = "/tmp"  # the program's working directory inside bwrap
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_STAGE_SCRIPT = (
    "set -e; stage=$1; n=$2; shift 2; "
    'mount -t tmpfs -o mode=0755,size=64k ftsweep-stage "$stage"; '
    'i=0; while [ "$i" -lt "$n" ]; do '
    'mkdir "$stage/$i"; mount --bind "$1" "$stage/$i"; shift; i=$((i+1)); done; '
    'exec "$@"'
)


class SandboxUnavailableError(RuntimeError):
    """OS-level isolation cannot run on this machine; the message says why and what to do."""


@dataclass(frozen=True)
class Mounts:
    """What the sandbox sees of the host, read-only."""

    binds: tuple[str, ...]  # bound at the same path
    links: tuple[tuple[str, str], ...]  # (target, path) symlinks, e.g. /lib -> usr/lib
    interpreter_dirs: tuple[str, ...]  # prefixes of the interpreter outside /usr


def interpreter() -> str:
    """The real path of this interpreter, which also runs inside the sandbox."""
    if not sys.executable:
        raise SandboxUnavailableError("sys.executable is empty; cannot start an interpreter")
    return os.path.realpath(sys.executable)


def host_mounts() -> Mounts:
    """/usr, the merged-/usr links (or directories), the interpreter's prefix."""
    binds = ["/usr"]
    links = []
    for path in _SYSTEM_LINKS:
        if os.path.islink(path):
            links.append((os.readlink(path), path))
        elif os.path.isdir(path):
            binds.append(path)
    if os.path.isfile("/etc/ld.so.cache"):
        binds.append("/etc/ld.so.cache")
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    prefixes.add(os.path.dirname(os.path.dirname(interpreter())))
    covered = [p for p in binds if os.path.isdir(p)]
    extra = sorted(p for p in prefixes if not _under(p, covered))
    # A prefix inside another one is bound with it.
    extra = [p for p in extra if not _under(p, [q for q in extra if q != p])]
    return Mounts(tuple(binds), tuple(links), tuple(extra))


def _under(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def bwrap_command(inner: list[str], *, scratch_bytes: int, info_fd: int) -> list[str]:
    """The argv that runs ``inner`` under bubblewrap (see the module docstring)."""
    bwrap = _tool("bwrap", "bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    mounts = host_mounts()
    as_root = os.geteuid() == 0
    staged = {d: f"{SCRATCH}/{i}" for i, d in enumerate(mounts.interpreter_dirs)}
    args = [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
    ]
    for path in mounts.binds:
        args += ["--ro-bind", path, path]
    for target, path in mounts.links:
        args += ["--symlink", target, path]
    for path in mounts.interpreter_dirs:
        args += ["--ro-bind", staged[path] if as_root else path, path]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",
        "--size",
        str(scratch_bytes),
        "--tmpfs",
        SCRATCH,
        "--remount-ro",
        "/",
        "--chdir",
        SCRATCH,
        "--clearenv",
        "--setenv",
        "PATH",
        INNER_PATH,
        "--die-with-parent",
        "--new-session",
        "--info-fd",
        str(info_fd),
        "--",
        *inner,
    ]
    if not as_root:
        return args
    return [
        _tool("unshare", "unshare (util-linux) is missing"),
        "--mount",
        "--propagation",
        "private",
        "--",
        _tool("sh", "sh is missing"),
        "-c",
        _STAGE_SCRIPT,
        "sh",
        SCRATCH,
        str(len(mounts.interpreter_dirs)),
        *mounts.interpreter_dirs,
        _tool("setpriv", "setpriv (util-linux) is missing"),
        f"--reuid={SANDBOX_UID}",
        f"--regid={SANDBOX_UID}",
        "--clear-groups",
        "--",
        *args,
    ]


def _tool(name: str, missing: str) -> str:
    found = shutil.which(name, path=os.defpath + ":/usr/sbin:/sbin")
    if found is None:
        raise SandboxUnavailableError(missing)
    return found


@functools.lru_cache(maxsize=1)
def isolation_problem() -> str | None:
    """Why bwrap isolation cannot run here (None when it can), from one trial run.

    The trial starts a real sandbox with an empty program, so a kernel without
    unprivileged user namespaces, a missing tool or an unreadable interpreter shows
    up here, once per process, rather than as a zero score per example.
    """
    from ftsweep.evaluators.sandbox import SandboxError, SandboxLimits, run_python

    try:
        result = run_python("", (), SandboxLimits(timeout_s=30), isolation="bwrap")
    except (SandboxUnavailableError, SandboxError, OSError) as exc:
        return str(exc)
    if not result.passed:
        return f"a trial sandbox did not finish cleanly: {result.stderr_tail.strip()[-500:]}"
    return None


def require(isolation: Isolation) -> None:
    """Raise SandboxUnavailableError if ``isolation`` cannot run on this machine."""
    if isolation == "none":
        return
    problem = isolation_problem()
    if problem is not None:
        raise SandboxUnavailableError(
            f"pass_at_1 needs OS-level isolation (bubblewrap), which does not work here: "
            f"{problem}. Install it (apt-get install bubblewrap; the kernel must allow "
            f"user namespaces), or accept running generated code without it by setting "
            f"eval.evaluator_params.pass_at_1.sandbox: none (its scores are then marked)."
        )
