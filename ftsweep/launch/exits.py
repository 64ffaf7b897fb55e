"""Why a worker's process group ended, in words: the signal that killed it, not "code 1".

A run's exit status reaches the launcher in three shapes: minus the signal (a process
we waited for ourselves: the fork server's children, ``Popen``), 128 + the signal (a
shell, Slurm's ``ExitCode``), or 1 from ``accelerate launch``, whose own child was
killed; then the signal is only in its output (``CalledProcessError``: "died with
<Signals.SIGKILL: 9>", torch elastic: "Signal 9 (SIGKILL) received by PID ...",
"exitcode : -9"). ``exit_cause`` looks at all three.
"""

from __future__ import annotations

import re
import signal

# Exit statuses above this are 128 + a signal number (the shell's convention).
_SHELL_SIGNAL_BASE = 128

_IN_LOG = (
    re.compile(r"Signals\.(SIG[A-Z0-9]+)"),  # CalledProcessError, Python's repr of a signal
    re.compile(r"Signal \d+ \((SIG[A-Z0-9]+)\) received"),  # torch elastic
    re.compile(r"exitcode\s*:\s*-(\d+)"),  # torch elastic's failure table
)


def signal_of(rc: int) -> signal.Signals | None:
    """The signal an exit status stands for (-N or 128+N), if it stands for one."""
    number = -rc if rc < 0 else rc - _SHELL_SIGNAL_BASE if rc > _SHELL_SIGNAL_BASE else 0
    try:
        return signal.Signals(number) if number > 0 else None
    except ValueError:
        return None


def signal_in_log(text: str) -> signal.Signals | None:
    """The last signal the launcher's own output says killed a worker process."""
    found: signal.Signals | None = None
    for line in text.splitlines():
        for pattern in _IN_LOG:
            for match in pattern.finditer(line):
                name = match.group(1)
                try:
                    found = signal.Signals(int(name)) if name.isdigit() else signal.Signals[name]
                except (KeyError, ValueError):
                    continue
    return found


def describe_signal(sig: signal.Signals) -> str:
    text = f"killed by {sig.name} (signal {int(sig)})"
    if sig == signal.SIGKILL:
        # Nothing in ftsweep sends SIGKILL to a worker it still waits for; the kernel's
        # out-of-memory killer does (and a person's `kill -9`). dmesg would tell, but
        # it is often unreadable to users, so this says "likely".
        text += (
            "; likely the out-of-memory killer (lower batch_size or max_length, "
            "or give the run more memory); `dmesg` or the scheduler's memory report "
            "can confirm it"
        )
    elif sig == signal.SIGSEGV:
        text += "; a crash in native code (a library or driver), not in ftsweep's Python"
    return text


def exit_cause(rc: int, log_tail: str = "") -> str:
    """What ended a worker that left no result: a signal when there was one, else the code."""
    if rc == 0:
        return "worker exited without writing a result"
    sig = signal_of(rc) or (signal_in_log(log_tail) if rc == 1 else None)
    if sig is not None:
        return f"worker {describe_signal(sig)}"
    return f"worker exited with code {rc}"


# Signals that ask a process to stop: someone (ftsweep cancel, Ctrl-C, a closed
# terminal, a scheduler) wanted the run to end, so a retry would undo their decision.
_STOP_SIGNALS = frozenset(
    {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}
)
# What a scheduler reports when the machine, not the run, failed.
_INVOLUNTARY_REASONS = ("OUT_OF_MEMORY", "NODE_FAIL")


def killed_involuntarily(rc: int, log_tail: str = "", reason: str = "") -> bool:
    """Whether a worker that left neither result nor failure of its own died of something
    a retry may not meet again (a kill, a crash, a lost node), not of a stop request."""
    if any(word in reason for word in _INVOLUNTARY_REASONS):
        return True
    if "CANCELLED" in reason:
        return False
    sig = signal_of(rc) or (signal_in_log(log_tail) if rc == 1 else None)
    return sig is not None and sig not in _STOP_SIGNALS
