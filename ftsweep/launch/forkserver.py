"""A fork server for single-process runs: the heavy imports once, a fresh process per run.

Starting a run costs seconds before its first step: `accelerate launch` starts a Python
that starts another, and each imports torch, transformers and peft. For a run with one
process and no accelerate config file (what `accelerate launch` hands to its "simple
launcher"), the local executor sends it instead to a server that has already imported
all of it. The server forks; the child starts its own session (so cancel kills it and
everything it spawns), sends its output to the run's log, computes the environment
exactly as `accelerate launch` would (accelerate's own parser and
``prepare_simple_launcher_cmd_env``), and runs the worker. Isolation stays a process per
run; only the imports are shared, read-only, through fork. The server itself never runs
training, never touches CUDA and starts no threads, so forking it is safe.

Protocol (JSON lines): the client writes ``{"id", "argv", "cwd", "log", "env"}``; the
server answers ``{"id", "pid"}`` when the child exists and ``{"pid", "rc"}`` when it
exits. ``rc`` is the exit status, or minus the signal that killed it.
"""

from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

LAUNCH_MODULE = "accelerate.commands.launch"
WORKER_MODULE = "ftsweep.worker"


def eligible(argv: list[str]) -> bool:
    """Whether `accelerate launch` would run this job with its simple launcher."""
    if LAUNCH_MODULE not in argv or WORKER_MODULE not in argv:
        return False
    flags = set(argv[: argv.index(WORKER_MODULE)])
    if flags & {"--multi_gpu", "--config_file", "--use_deepspeed", "--use_fsdp"}:
        return False
    i = argv.index("--num_processes") if "--num_processes" in argv else -1
    return i < 0 or argv[i + 1] == "1"


# -- the server ------------------------------------------------------------------------


def serve() -> None:
    import accelerate.commands.launch  # noqa: F401 - the imports every run shares
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import ftsweep.worker.__main__  # noqa: F401

    out = sys.stdout
    children: set[int] = set()
    stdin = sys.stdin.fileno()
    buf = b""
    while True:
        ready, _, _ = select.select([stdin], [], [], 0.2)
        if ready:
            chunk = os.read(stdin, 65536)
            if not chunk:  # the client is gone: children run on, the server ends
                os._exit(0)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                out.flush()
                pid = os.fork()
                if pid == 0:
                    _child(req)  # never returns
                children.add(pid)
                _say(out, {"id": req["id"], "pid": pid})
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                _say(out, {"pid": pid, "rc": os.waitstatus_to_exitcode(status)})


def _say(out: Any, msg: dict[str, Any]) -> None:
    out.write(json.dumps(msg) + "\n")
    out.flush()


def _child(req: dict[str, Any]) -> None:
    code = 1
    try:
        os.setsid()
        log = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)
        os.chdir(req["cwd"])
        code = _run_worker(req["argv"], req["env"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child must always exit, with the cause logged
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _run_worker(argv: list[str], env: dict[str, str]) -> int:
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_simple_launcher_cmd_env

    os.environ.clear()
    os.environ.update(env)
    start = argv.index(LAUNCH_MODULE) + 1
    args = launch_command_parser().parse_args(argv[start:])
    args, _, _ = _validate_launch_command(args)
    cmd, run_env = prepare_simple_launcher_cmd_env(args)
    os.environ.clear()
    os.environ.update(run_env)
    from ftsweep.worker.__main__ import main

    sys.argv = [cmd[cmd.index(WORKER_MODULE) - 1], *cmd[cmd.index(WORKER_MODULE) + 1 :]]
    return main(sys.argv[1:])


# -- the client, in the launcher ----------------------------------------------------------


class ForkServer:
    """One server process; ``start`` forks a run, ``events`` reports starts and exits."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ftsweep.launch.forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name="forkserver")
        self._reader.start()
        self._next = 0
        self._held: list[dict[str, Any]] = []  # events seen while waiting in start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._events.put(json.loads(line))
        self._events.put({"server_exit": self.proc.wait()})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def start(
        self, argv: list[str], cwd: Path, log: Path, env: dict[str, str], timeout: float = 60.0
    ) -> int:
        """Fork a run; its pid (its own process group), once the child exists."""
        assert self.proc.stdin is not None
        self._next += 1
        req = {"id": self._next, "argv": argv, "cwd": str(cwd), "log": str(log), "env": env}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            msg = self._events.get(timeout=timeout)
            if msg.get("id") == self._next:
                return int(msg["pid"])
            if "server_exit" in msg:
                raise RuntimeError(f"the fork server exited ({msg['server_exit']})")
            self._held.append(msg)  # an exit of another run: kept for events()

    def events(self) -> list[dict[str, Any]]:
        out, self._held = self._held, []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


if __name__ == "__main__":
    serve()
