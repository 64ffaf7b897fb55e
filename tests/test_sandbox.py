"""The pass@1 sandbox under attack: escapes and faked passes (issue 8, items 1 and 2).

Each escape program first gets process creation past the in-process hook the way it
was done from outside: a fresh copy of ``_posixsubprocess`` loaded under another
name, whose ``fork_exec`` is not the stubbed one. Every escape runs twice: with both
layers (the hook refuses the fresh copy), and with the OS layer alone (no hook, and
processes allowed), so that each namespace and limit is shown to hold by itself.
The escape programs assert, as their tests, that the escape failed; the harness also
checks from outside (marker files, a listener, a signal handler, the process table).

These tests need bubblewrap (`.ci/run` installs it); they fail, never skip, without it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from ftsweep.evaluators import build_evaluator
from ftsweep.evaluators.base import EvalExample
from ftsweep.evaluators.isolation import SandboxUnavailableError, isolation_problem
from ftsweep.evaluators.sandbox import SandboxLimits, SandboxResult, run_python


@pytest.fixture(scope="module", autouse=True)
def bwrap_works() -> None:
    problem = isolation_problem()
    if problem is not None:
        pytest.fail(f"bubblewrap isolation does not work here: {problem}", pytrace=False)


# Loads a fresh, unstubbed fork_exec (the reported escape) and starts argv with it.
SPAWN = '''
import importlib.util, os, sys
import _posixsubprocess as _stubbed

def spawn(argv, stdout=-1):
    """argv's exit status, or the OSError that stopped it from starting."""
    try:
        spec = importlib.util.spec_from_file_location("fresh._posixsubprocess", _stubbed.__file__)
        fresh = importlib.util.module_from_spec(spec)
        r, w = os.pipe()
        pid = fresh.fork_exec(
            [os.fsencode(a) for a in argv], [os.fsencode(argv[0])], True, (w,), None, None,
            -1, -1, -1, stdout, -1, -1, r, w, True, False, -1, None, None, None, -1, None,
            False)
        os.close(w)
        os.read(r, 1000)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except OSError as exc:  # PermissionError from the hook, EAGAIN from RLIMIT_NPROC
        return exc
'''

# layers -> (in-process guard, processes the program may start)
LAYERS = {"both_layers": (True, 0), "os_layer_alone": (False, 16)}


def run(program: str, tests: list[str], layers: str, timeout_s: float = 10) -> SandboxResult:
    guard, processes = LAYERS[layers]
    limits = SandboxLimits(timeout_s=timeout_s, processes=processes)
    return run_python(SPAWN + program, tests, limits, in_process_guard=guard)


def contained(result: SandboxResult) -> None:
    """The escape program ran to its end and every "the escape failed" assert held."""
    assert result.passed, result.stderr_tail


layers = pytest.mark.parametrize("layers", sorted(LAYERS))


# --- escapes ------------------------------------------------------------------------


def test_the_fresh_module_copy_is_refused_by_the_hook():
    result = run("assert isinstance(spawn(['/usr/bin/true']), PermissionError)", [], "both_layers")
    contained(result)
    result = run_python(SPAWN + "raise spawn(['/usr/bin/true'])")
    assert "importing fresh._posixsubprocess again is not allowed" in result.stderr_tail


@layers
def test_commands_never_run_as_root(layers, tmp_path):
    program = """
fd = os.open(os.path.abspath("out"), os.O_WRONLY | os.O_CREAT, 0o600)
status = spawn(["/usr/bin/id", "-u"], fd)
seen = open("out").read().strip()
"""
    tests = [
        "assert os.getuid() != 0 and os.geteuid() != 0",
        "assert seen != '0', 'a command ran as root'",
        "assert status != 0 or seen == '65534'",
    ]
    contained(run(program, tests, layers))


def test_the_sandbox_is_an_unprivileged_user_on_the_host():
    """Seen from outside, every sandbox process is nobody (as root) or the caller."""
    found: list[list[int]] = []

    def watch() -> None:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not found:
            for status in Path("/proc").glob("[0-9]*/status"):
                try:
                    text = status.read_text()
                    argv = (status.parent / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                # The interpreter itself, not the root-owned launch steps before it.
                if argv[1:5] == [b"-I", b"-S", b"-B", b"-c"] and b"inside the sandbox" in argv[5]:
                    uids = next(line for line in text.splitlines() if line.startswith("Uid:"))
                    found.append([int(u) for u in uids.split()[1:]])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    run_python("import time\ntime.sleep(3)", [], SandboxLimits(timeout_s=6))
    watcher.join()
    assert found, "no sandboxed interpreter seen in the host's process table"
    expected = 65534 if os.geteuid() == 0 else os.getuid()
    assert all(uid == expected for uids in found for uid in uids), found


@layers
def test_writes_outside_the_sandbox_do_not_land(layers, tmp_path):
    marker = tmp_path / "PWNED"  # not even visible inside the sandbox
    beside_stdlib = Path(os.__file__).with_name(f"PWNED_{uuid.uuid4().hex}")  # visible
    program = f"""
for path in ({str(marker)!r}, {str(beside_stdlib)!r}):
    try:
        open(path, "w").write("x")
    except OSError:
        pass
    spawn(["/bin/sh", "-c", "echo x > " + path])
"""
    tests = [f"assert not os.path.exists({str(beside_stdlib)!r})"]
    try:
        contained(run(program, tests, layers))
        assert not marker.exists() and not beside_stdlib.exists()
    finally:
        beside_stdlib.unlink(missing_ok=True)


@layers
def test_no_network(layers):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    program = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    connected = True
except OSError:
    connected = False
script = "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
status = spawn([sys.executable, "-c", script])
"""
    tests = ["assert not connected", "assert status != 0"]
    try:
        contained(run(program, tests, layers))
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection ever reached the host's loopback
    finally:
        listener.close()


def _processes_with(argument: bytes) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if argument in cmdline.read_bytes().split(b"\0"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@layers
def test_nothing_outlives_the_timeout_kill(layers):
    duration = f"{1000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000}"
    program = f"""
spawn(["/bin/sh", "-c", "(setsid /bin/sleep {duration} &) ; (/bin/sleep {duration} &)"])
while True:
    pass
"""
    started = time.monotonic()
    try:
        result = run(program, [], layers, timeout_s=2)
        assert result.timed_out and not result.passed
        assert time.monotonic() - started < 2 + 6
        assert _processes_with(duration.encode()) == []  # no grace period: gone already
    finally:
        for pid in _processes_with(duration.encode()):
            os.kill(pid, signal.SIGKILL)


@layers
def test_no_metadata_changes_through_read_only_descriptors(layers):
    # A file every sandbox can see; each change keeps its current value, so nothing
    # is harmed if one succeeds.
    program = """
def attempt(change):
    try:
        change()
        return "changed"
    except OSError as exc:
        return exc.errno

fd = os.open(os.__file__, os.O_RDONLY)
st = os.fstat(fd)
chmod = attempt(lambda: os.chmod(fd, st.st_mode & 0o7777))
chown = attempt(lambda: os.chown(fd, st.st_uid, st.st_gid))
utime = attempt(lambda: os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns)))
"""
    tests = ["assert chmod != 'changed'", "assert chown != 'changed'", "assert utime != 'changed'"]
    contained(run(program, tests, layers))


@layers
def test_the_parents_environment_is_not_readable(layers):
    """/proc/<pid>/environ is a process's environment as it started, so the secret goes
    into the environment of a fresh harness process, as it would for a worker."""
    secret = uuid.uuid4().hex
    program = """
seen = repr(dict(os.environ))
for pid in [os.getppid()] + [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        seen += open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
    except OSError:
        pass
"""
    # PWD from bwrap's --chdir, LC_CTYPE from Python's own locale coercion (PEP 538).
    tests = [
        f"assert {secret!r} not in seen",
        "assert set(os.environ) <= {'PATH', 'PWD', 'LC_CTYPE'}",
    ]
    harness = (
        "import sys, test_sandbox as t\n"
        "r = t.run(sys.argv[1], sys.argv[3:], sys.argv[2])\n"
        "print(r.passed)\n"
        "print(r.stderr_tail, file=sys.stderr)\n"
    )
    env = {**os.environ, "FTSWEEP_TEST_SECRET": secret, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [sys.executable, "-c", harness, program, layers, *tests],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "True", done.stderr[-2000:]


@layers
def test_the_parent_cannot_be_signalled(layers):
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    me = os.getpid()
    program = f"""
import signal
outcomes = []
for pid in (os.getppid(), {me}):
    try:
        os.kill(pid, signal.SIGUSR1)
        outcomes.append("sent")
    except OSError as exc:
        outcomes.append(exc.errno)
status = spawn(["/bin/kill", "-USR1", "{me}"])
"""
    try:
        result = run(program, ["assert outcomes[1] != 'sent'", "assert status != 0"], layers)
        time.sleep(0.2)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    contained(result)
    assert received == []


# --- faked passes: every one of these has a test that fails -------------------------

REAL_EXIT = (
    "import _imp, importlib.machinery\n"
    "posix = _imp.create_builtin(importlib.machinery.ModuleSpec('posix', None))\n"
)
FAKES = {
    "sys.exit(0)": "import sys\nsys.exit(0)",
    "raise SystemExit": "raise SystemExit",
    "raise SystemExit(0)": "raise SystemExit(0)",
    "os._exit(0)": "import os\nos._exit(0)",
    "pristine posix._exit(0)": REAL_EXIT + "posix._exit(0)",
    "kill itself": "import signal\nsignal.raise_signal(signal.SIGKILL)",
    "os.kill itself": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "atexit rewrites the status": REAL_EXIT + "import atexit\natexit.register(posix._exit, 0)",
    "atexit exits 0": "import atexit, sys\natexit.register(sys.exit, 0)",
    "excepthook swallows": "import sys\nsys.excepthook = lambda *a: None",
    "forged reports": REAL_EXIT
    + (
        "import os\n"
        "for fd in range(3, 32):\n"
        "    try:\n"
        "        os.write(fd, b'ready\\n' + b'0' * 32 + b'\\n' * 2)\n"
        "    except OSError:\n"
        "        pass\n"
        "posix._exit(0)\n"
    ),
}


@pytest.mark.parametrize("guard", [True, False], ids=["both_layers", "os_layer_alone"])
@pytest.mark.parametrize("program", FAKES.values(), ids=list(FAKES))
def test_early_exits_never_pass(program, guard):
    result = run_python(program, ["assert False"], in_process_guard=guard)
    assert not result.passed
    assert result.tests_passed == 0


def test_a_test_after_the_exit_point_is_not_counted():
    program = "def add(a, b):\n    return a + b\n"
    tests = ["assert add(1, 2) == 3", "import os\nos._exit(0)", "assert add(2, 2) == 4"]
    result = run_python(program, tests, in_process_guard=False)
    assert (result.passed, result.tests_passed, result.returncode) == (False, 1, 0)


def test_honest_programs_pass_under_both_isolations():
    program = "def add(a, b):\n    return a + b\n"
    tests = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]
    for isolation in ("bwrap", "none"):
        result = run_python(program, tests, isolation=isolation)  # type: ignore[arg-type]
        assert result.passed, result.stderr_tail
        assert (result.tests_passed, result.tests_total, result.isolation) == (2, 2, isolation)


def test_scratch_is_private_writable_and_bounded():
    program = """
open("a.txt", "w").write("ok")
try:
    with open("big", "wb") as f:
        for _ in range(8):
            f.write(b"x" * 1024 * 1024)
    full = False
except OSError:
    full = True
"""
    result = run_python(
        program, ["assert open('a.txt').read() == 'ok'", "assert full"], SandboxLimits(scratch_mb=4)
    )
    assert result.passed, result.stderr_tail


# --- pass_at_1: refusing without isolation, and marking `sandbox: none` ------------


def _example(prediction: str) -> EvalExample:
    return EvalExample("e", "p", "r", prediction, {"tests": ["assert f() == 1"]})


def test_pass_at_1_refuses_to_run_without_isolation(monkeypatch, tmp_path):
    import ftsweep.evaluators.isolation as isolation

    marker = tmp_path / "ran"
    monkeypatch.setattr(isolation, "isolation_problem", lambda: "bwrap: not found")
    with pytest.raises(SandboxUnavailableError, match="sandbox: none") as caught:
        build_evaluator("pass_at_1", {}).score([_example(f"open({str(marker)!r}, 'w')")])
    assert "bwrap: not found" in str(caught.value)
    assert not marker.exists()


def test_pass_at_1_without_a_sandbox_runs_only_when_asked_and_is_marked(monkeypatch):
    import ftsweep.evaluators.isolation as isolation

    monkeypatch.setattr(isolation, "isolation_problem", lambda: "bwrap: not found")
    scores = build_evaluator("pass_at_1", {"sandbox": "none"}).score(
        [_example("def f():\n    return 1\n")]
    )
    assert scores.aggregate == {"pass_at_1": 1.0}
    assert scores.notes == {"sandbox": "none"}
    isolated = build_evaluator("pass_at_1", {}).score  # the default is bwrap: refused
    with pytest.raises(SandboxUnavailableError):
        isolated([_example("def f():\n    return 1\n")])


def test_pass_at_1_sandbox_scores_carry_no_mark():
    scores = build_evaluator("pass_at_1", {}).score([_example("def f():\n    return 1\n")])
    assert scores.aggregate == {"pass_at_1": 1.0} and scores.notes == {}


def test_an_unknown_sandbox_is_a_validation_error_naming_the_valid_ones():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        build_evaluator("pass_at_1", {"sandbox": "docker"})
    text = str(caught.value)
    assert "sandbox" in text and "'bwrap'" in text and "'none'" in text
