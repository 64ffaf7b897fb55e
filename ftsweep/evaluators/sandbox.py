"""Run generated Python code and its tests in a sandbox; a pass must be reported, not implied.

``run_python(program, tests, limits)`` never executes the code in this process. It
starts ``sandbox_prelude.py`` in a separate interpreter, by default under bubblewrap
(``isolation.py`` says exactly what that isolates), which runs the program and then
each test statement.

Two layers contain a program:

1. **The operating system** (``isolation="bwrap"``): own user (nobody, no
   capabilities), mount, PID, network, IPC and UTS namespaces; a read-only view of
   /usr and the interpreter; a private size-limited tmpfs as the only writable place;
   no network; a cleared environment. On the timeout the whole sandbox is killed and
   this function waits until its PID namespace is gone: nothing outlives the call.
2. **Inside the interpreter**, set by the prelude before the program runs: resource
   limits (address space, CPU seconds, file size, open files, processes and threads,
   no core dumps) and an audit hook (PEP 578) that refuses process creation,
   signals, sockets, ctypes, writes outside the scratch dir and more. The hook is a
   tripwire, not a boundary: PEP 578 says hooks cannot stop deliberately malicious
   code, and loading a fresh copy of a stubbed module had got past it. Layer 1 is
   what holds against a hostile program.

**Success must be reported.** The harness gives the prelude one random nonce per test
plus one for "ran to the end", through a file descriptor that the prelude reads and
closes before the program starts (it is reachable by no name). After each test
statement completes, the prelude writes that test's nonce to a second descriptor,
an unlinked file opened here. The program passes only if every nonce came back, in
order, with nothing else, and the interpreter then exited 0 within the timeout.
Exiting early (``sys.exit(0)``, ``raise SystemExit``, ``os._exit(0)``, an ``atexit``
handler that rewrites the exit status), being killed, or writing guesses to the
descriptor all score 0.

What this does NOT protect against: see the README's Security section. In short, the
kernel is shared (a kernel bug is an escape; there is no seccomp filter), the program
can read the world-readable files of /usr and the interpreter's prefix, it can use
CPU and memory up to its limits, and the nonces live in the prelude's memory: a
program written to read its own interpreter's frames could forge reports (the hook
refuses the obvious routes: gc's object walks and /proc/self/mem). Passing asserts is
all pass@1 measures: an object whose ``__eq__`` is always true passes
``assert f(x) == y``; that is benchmark design, not containment.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ftsweep.evaluators.isolation import (
    INNER_PATH,
    SCRATCH,
    Isolation,
    bwrap_command,
    interpreter,
)

_PRELUDE = Path(__file__).with_name("sandbox_prelude.py")
_STDERR_TAIL_BYTES = 4000
_READY = b"ready\n"
_TEARDOWN_WAIT_S = 5.0


class SandboxError(RuntimeError):
    """The sandbox itself failed to start (not the program): a machine problem."""


@dataclass(frozen=True)
class SandboxLimits:
    """How much one program may use. Defaults suit benchmark-style unit tests."""

    timeout_s: float = 5.0
    memory_mb: int = 512
    file_size_mb: int = 16
    open_files: int = 64
    # New processes and threads the program may start; 0 forbids fork and threads.
    processes: int = 0
    # Size of the private tmpfs that is the program's working directory (bwrap only).
    scratch_mb: int = 64

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        for name in ("memory_mb", "file_size_mb", "open_files", "scratch_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.processes < 0:
            raise ValueError(f"processes must be >= 0, got {self.processes}")


@dataclass(frozen=True)
class SandboxResult:
    """How one program run ended.

    ``passed`` is True iff every test reported its own success, the run reported its
    end, and the interpreter exited 0 within the timeout. ``returncode`` is negative
    for death by signal of the process this module started (-9 after a timeout
    kill); under bwrap a signal that ended the program itself shows as 128 + signal.
    ``isolation`` is how it ran: "bwrap", or "none" when that was asked for.
    """

    passed: bool
    timed_out: bool
    returncode: int | None
    tests_passed: int
    tests_total: int
    stderr_tail: str
    elapsed_s: float
    isolation: Isolation


def run_python(
    program: str,
    tests: Sequence[str] = (),
    limits: SandboxLimits | None = None,
    *,
    isolation: Isolation = "bwrap",
    in_process_guard: bool = True,
) -> SandboxResult:
    """Run ``program`` and then each statement of ``tests``; report how it ended.

    A bad program never raises here; it fails. SandboxError (the sandbox did not
    start) and SandboxUnavailableError or OSError (no bwrap, fork refused) do: those
    are problems with the machine, and scoring them 0 would blame the model.
    ``in_process_guard=False`` leaves out layer 2, for testing layer 1 on its own.
    """
    limits = limits or SandboxLimits()
    nonces = tuple(secrets.token_hex(16) for _ in range(len(tests) + 1))
    with ExitStack() as stack:
        job = stack.enter_context(tempfile.TemporaryFile())
        report = stack.enter_context(tempfile.TemporaryFile())
        stderr = stack.enter_context(tempfile.TemporaryFile())
        if isolation == "bwrap":
            scratch, cwd = SCRATCH, None
        else:
            tmp = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="ftsweep-sandbox-", ignore_cleanup_errors=True)
            )
            scratch = cwd = os.path.realpath(tmp)
        _write_job(job, program, tests, nonces, limits, scratch, in_process_guard)
        inner = [
            interpreter(),
            "-I",
            "-S",
            "-B",
            "-c",
            _prelude_source(),
            str(job.fileno()),
            str(report.fileno()),
        ]
        started = time.monotonic()
        with _info_pipe(isolation) as (info_read, info_write):
            if isolation == "bwrap":
                command = bwrap_command(
                    inner, scratch_bytes=limits.scratch_mb * 1024 * 1024, info_fd=info_write
                )
            else:
                command = inner
            fds = (job.fileno(), report.fileno()) + ((info_write,) if info_write >= 0 else ())
            returncode, timed_out = _run_contained(
                command, cwd, fds, stderr, limits.timeout_s, info_read
            )
        elapsed = time.monotonic() - started
        lines = _report_lines(report, len(nonces))
        if not lines or lines[0] != _READY.decode().strip():
            if timed_out:  # the machine was too slow even to start: not the program's fault,
                lines = []  # but nothing ran either, so nothing passed
            else:
                raise SandboxError(
                    f"the sandbox did not start (exit code {returncode}): {_tail(stderr).strip()}"
                )
        reported = _count_reported(lines[1:], nonces)
        complete = reported == len(nonces) and len(lines) == len(nonces) + 1
        return SandboxResult(
            passed=complete and returncode == 0 and not timed_out,
            timed_out=timed_out,
            returncode=returncode,
            tests_passed=min(reported, len(tests)),
            tests_total=len(tests),
            stderr_tail=_tail(stderr),
            elapsed_s=elapsed,
            isolation=isolation,
        )


def _prelude_source() -> str:
    return _PRELUDE.read_text(encoding="utf-8")


def _write_job(
    job: IO[bytes],
    program: str,
    tests: Sequence[str],
    nonces: tuple[str, ...],
    limits: SandboxLimits,
    scratch: str,
    guard: bool,
) -> None:
    """The prelude's instructions, read from a descriptor only (never by name)."""
    payload = {
        "program": program,
        "tests": list(tests),
        "nonces": list(nonces),
        "scratch": scratch,
        "guard": guard,
        "limits": {
            "memory_bytes": limits.memory_mb * 1024 * 1024,
            # A backstop to the wall-clock timeout, which also catches sleeping code.
            "cpu_seconds": math.ceil(limits.timeout_s) + 1,
            "file_bytes": limits.file_size_mb * 1024 * 1024,
            "open_files": limits.open_files,
            "processes": limits.processes,
        },
    }
    # surrogatepass: a generation holding a lone surrogate must fail to compile in
    # the child, not crash the evaluator here.
    job.write(json.dumps(payload).encode("utf-8", errors="surrogatepass"))
    job.flush()
    job.seek(0)


@contextmanager
def _info_pipe(isolation: Isolation) -> Iterator[tuple[int, int]]:
    """A pipe on which bwrap says the host pid of the sandbox's init; (-1, -1) for none."""
    if isolation != "bwrap":
        yield -1, -1
        return
    read_end, write_end = os.pipe()
    try:
        yield read_end, write_end
    finally:
        for fd in (read_end, write_end):
            os.close(fd)


def _run_contained(
    command: list[str],
    cwd: str | None,
    fds: tuple[int, ...],
    stderr: IO[bytes],
    timeout_s: float,
    info_read: int,
) -> tuple[int | None, bool]:
    """Start the process in its own session; on timeout kill all of it and wait."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={"PATH": INNER_PATH},
        stdin=subprocess.DEVNULL,
        # Output goes nowhere or to a file: reading a pipe would let a print loop
        # fill this process's memory, while the file is capped by RLIMIT_FSIZE.
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        close_fds=True,
        pass_fds=fds,
        start_new_session=True,
    )
    timed_out = False
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # Also reached on KeyboardInterrupt: never leave a runaway program behind.
        if process.returncode is None:
            _kill_all(process, info_read)
    # Under bwrap the program's own death by signal is reported as 128 + signal.
    if process.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        timed_out = True  # the CPU-time backstop fired: a timeout by another clock
    return process.returncode, timed_out


def _kill_all(process: subprocess.Popen[bytes], info_read: int) -> None:
    """Kill the sandbox's init (so the kernel kills its whole PID namespace), then
    bwrap's process group, and wait until the init is gone.

    Both are signalled while bwrap is still unreaped, so neither id can have been
    reused by an unrelated process.
    """
    init_pid = _sandbox_init_pid(info_read) if info_read >= 0 else None
    if init_pid is not None:
        _signal(init_pid, os.kill)
    _signal(process.pid, os.killpg)
    process.wait()
    if init_pid is not None:
        _wait_gone(init_pid)


def _sandbox_init_pid(info_read: int) -> int | None:
    """The host pid of bwrap's init in the sandbox, if bwrap has said it yet."""
    flags = fcntl.fcntl(info_read, fcntl.F_GETFL)
    fcntl.fcntl(info_read, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        data = os.read(info_read, 65536)
    except BlockingIOError:
        return None
    try:
        pid = json.loads(data.decode()).get("child-pid")
    except (ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) and pid > 1 else None


def _signal(pid: int, send: object) -> None:
    try:
        send(pid, signal.SIGKILL)  # type: ignore[operator]
    except (ProcessLookupError, PermissionError):
        pass  # exited between the timeout and the kill


def _wait_gone(pid: int) -> None:
    """Wait until ``pid`` has exited (gone or a zombie): its namespace is then empty."""
    deadline = time.monotonic() + _TEARDOWN_WAIT_S
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return
        time.sleep(0.01)


def _report_lines(report: IO[bytes], expected: int) -> list[str]:
    """The report's lines, read up to a little more than an honest run writes."""
    report.seek(0)
    data = report.read(len(_READY) + expected * 34 + 1)
    return data.decode("ascii", errors="replace").splitlines()


def _count_reported(lines: list[str], nonces: tuple[str, ...]) -> int:
    """How many nonces came back in order, before anything that is not the next one."""
    count = 0
    for line, nonce in zip(lines, nonces, strict=False):
        if not secrets.compare_digest(line, nonce):
            break
        count += 1
    return count


def _tail(stream: IO[bytes]) -> str:
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - _STDERR_TAIL_BYTES))
    return stream.read().decode("utf-8", errors="replace")
