"""Run generated Python code in a separate, limited process.

``run_python(source, limits)`` writes ``source`` into a fresh temporary directory and
runs it with ``python -I -S -B`` through ``sandbox_prelude.py``. It never executes
the code in this process.

What contains a program:

* **A separate process in its own session**, killed with its whole process group
  when the wall-clock timeout expires. An infinite loop costs ``timeout_s``.
* **Resource limits** set, soft and hard, before the program starts: address space
  (a memory bomb gets MemoryError), CPU seconds, size of any file written (and so of
  stderr), open files, no core dumps, no new processes (RLIMIT_NPROC; Linux does not
  enforce it for root).
* **A clean start**: an empty temporary working directory, an environment holding
  only PATH, isolated mode (no PYTHON* variables, no user or site packages, the
  script's folder not on sys.path — the program sees the standard library only),
  and no bytecode written.
* **An audit hook** (PEP 578) installed before the program runs. It refuses process
  creation (subprocess, os.system, exec*, spawn*, fork, posix_spawn, pty), signals
  to other processes, every socket operation, ctypes, tracing, raising resource
  limits, symlinks and hard links, changing directory, shutil.rmtree, and any write,
  delete, rename or mode change outside the temporary directory. A refused action
  raises PermissionError inside the program, which then typically fails: an
  ``os.system("rm -rf ~")`` solution simply scores 0. Functions with no audit event
  that could escape or fake success (the fork under subprocess, os._exit, mknod,
  mkfifo) are replaced by stubs that raise. Rules that ordinary code may notice:
  ``os.open`` for writing needs an absolute path (its audit event hides any
  ``dir_fd``), and shutil.rmtree is refused even inside the sandbox dir, so
  ``tempfile.TemporaryDirectory()`` fails at cleanup. Plain ``open()``, pathlib and
  ``tempfile.mkstemp`` inside the sandbox dir work.
* **Success must be earned**: a program passes only by exiting 0 after running to
  its end; ``sys.exit(0)`` or ``os._exit(0)`` before the tests ran is a failure.

What it does NOT protect against — be honest about the threat model. The audit hook
is a tripwire for ordinary generated code that does something it should not, not a
security boundary: PEP 578 itself says hooks cannot stop deliberately malicious
code. Native code (a compiled extension, or tricks that reach ctypes-like power
without the ctypes module), interpreter bugs, or Python written on purpose to undo
the stubs can get past it. Reading files is not restricted at all (the program can
read anything the user can), and there is no network namespace: the socket events
are the only network barrier. Against a deliberately hostile program, what still
holds is the separate process, the resource limits and the timeout — run untrusted
benchmarks as an unprivileged user, or inside a container or VM with no network, if
the generations might be adversarial. Running as root weakens containment further
(RLIMIT_NPROC is ignored, and any write the hook misses succeeds anywhere).

A second, separate caveat: passing asserts is all pass@1 measures. A solution that
returns an object whose ``__eq__`` is always true passes ``assert f(x) == y``; that
is a benchmark-design question, not containment.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_PRELUDE = Path(__file__).with_name("sandbox_prelude.py")
_STDERR_TAIL_BYTES = 4000


@dataclass(frozen=True)
class SandboxLimits:
    """How much one program may use. Defaults suit benchmark-style unit tests."""

    timeout_s: float = 5.0
    memory_mb: int = 512
    file_size_mb: int = 16
    open_files: int = 64

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        for name in ("memory_mb", "file_size_mb", "open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class SandboxResult:
    """How one program run ended.

    ``passed`` is True iff the program ran to its end and exited 0 within the
    timeout. ``returncode`` is negative for death by signal (-9 after a timeout kill,
    -24 for the CPU limit), None only if the process could not be reaped.
    """

    passed: bool
    timed_out: bool
    returncode: int | None
    stderr_tail: str
    elapsed_s: float


def run_python(source: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``source`` as a Python program in the sandbox and report how it ended.

    A bad program never raises here; it fails. OSError from starting the process
    (no interpreter, fork refused by the system) does propagate: that is a problem
    with the machine, and scoring it 0 would blame the model.
    """
    limits = limits or SandboxLimits()
    with (
        tempfile.TemporaryDirectory(prefix="ftsweep-sandbox-", ignore_cleanup_errors=True) as tmp,
        tempfile.TemporaryFile() as stderr,
    ):
        root = os.path.realpath(tmp)
        program = os.path.join(root, "program.py")
        # surrogatepass: a generation holding a lone surrogate must fail to compile
        # in the child, not crash the evaluator here.
        with open(program, "w", encoding="utf-8", errors="surrogatepass") as file:
            file.write(source)
        config = {
            "root": root,
            "program": program,
            "memory_bytes": limits.memory_mb * 1024 * 1024,
            # A backstop to the wall-clock timeout, which also catches sleeping code.
            "cpu_seconds": math.ceil(limits.timeout_s) + 1,
            "file_bytes": limits.file_size_mb * 1024 * 1024,
            "open_files": limits.open_files,
        }
        command = [_interpreter(), "-I", "-S", "-B", str(_PRELUDE), json.dumps(config)]
        started = time.monotonic()
        returncode, timed_out = _run_contained(command, root, stderr, limits.timeout_s)
        elapsed = time.monotonic() - started
        return SandboxResult(
            passed=returncode == 0 and not timed_out,
            timed_out=timed_out,
            returncode=returncode,
            stderr_tail=_tail(stderr),
            elapsed_s=elapsed,
        )


def _interpreter() -> str:
    if not sys.executable:
        raise RuntimeError("sys.executable is empty; cannot start a sandboxed interpreter")
    return sys.executable


def _run_contained(
    command: list[str], root: str, stderr: IO[bytes], timeout_s: float
) -> tuple[int | None, bool]:
    """Start the process in its own session; kill the whole group on timeout."""
    process = subprocess.Popen(
        command,
        cwd=root,
        env={"PATH": os.environ.get("PATH", os.defpath)},
        stdin=subprocess.DEVNULL,
        # Output goes nowhere or to a file: reading a pipe would let a print loop
        # fill this process's memory, while the file is capped by RLIMIT_FSIZE.
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        close_fds=True,
        start_new_session=True,
    )
    timed_out = False
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # Also reached on KeyboardInterrupt: never leave a runaway program behind.
        # The group is killed only while its leader is unreaped, so its id cannot
        # have been reused by an unrelated process group.
        if process.returncode is None:
            _kill_group(process.pid)
            process.wait()
    if process.returncode == -signal.SIGXCPU:
        timed_out = True  # the CPU-time backstop fired: a timeout by another clock
    return process.returncode, timed_out


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # exited between the timeout and the kill


def _tail(stream: IO[bytes]) -> str:
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - _STDERR_TAIL_BYTES))
    return stream.read().decode("utf-8", errors="replace")
