"""A two-node Slurm cluster on this machine, for the Slurm executor's tests.

Needs Debian's ``slurm-wlm`` and ``munge`` (``make slurm-test-deps`` installs them) and
root (slurmd runs jobs as their user). ``start()`` writes a slurm.conf into a temporary
directory, starts munged (if it is not running), slurmctld and one slurmd per node
(``slurmd -N``; both nodes are this host at 127.0.0.1) on free ports,
waits until ``sinfo`` shows the nodes idle, and returns the environment a client needs
(``SLURM_CONF``). ``stop()`` stops the daemons it started, by their pids.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MUNGE_SOCKET = "/run/munge/munge.socket.2"
DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "scontrol", "squeue", "scancel")


def missing() -> str | None:
    """Why a cluster cannot start here, or None when it can."""
    absent = [d for d in DAEMONS if shutil.which(d) is None]
    if absent:
        return f"Slurm is not installed ({', '.join(absent)} missing; `make slurm-test-deps`)"
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd runs jobs as their user)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)

    def sinfo(self) -> str:
        return subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env, timeout=10
        ).stdout.strip()


NODES = ("ftsweep-n1", "ftsweep-n2")


def _conf(root: Path) -> str:
    """Two nodes on this host (one slurmd each, `slurmd -N`), so that multi-node runs are
    tested too; the machine's CPUs and memory are split between them."""
    host = socket.gethostname()
    cpus = max(1, (os.cpu_count() or 1) // len(NODES))
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    mem_mb = max(1024, (mem_mb - 2048) // len(NODES))
    port = _free_port()
    nodes = "\n".join(
        f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={_free_port()} "
        f"CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN"
        for n in NODES
    )
    return f"""ClusterName=ftsweeptest
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmdSpoolDir={root}/spool/%n
StateSaveLocation={root}/state
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
SlurmctldPort={port}
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=3600
KillWait=5
{nodes}
PartitionName=debug Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP
"""


def _munge_answers(path: str = MUNGE_SOCKET) -> bool:
    """Whether a munged answers on its socket (a socket file alone may be stale)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def _ensure_munge() -> None:
    if _munge_answers():
        return
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not Path("/etc/munge/munge.key").exists() and shutil.which("mungekey"):
        subprocess.run(["mungekey", "--create"], check=True, capture_output=True, timeout=30)
        shutil.chown("/etc/munge/munge.key", "munge", "munge")
    # --force: start even over a stale socket left by a munged that died.
    _daemon(["munged", "--force"], None, Path("/run/munge"))
    deadline = time.time() + 10
    while not _munge_answers():
        if time.time() > deadline:
            raise RuntimeError("munged started but does not answer on " + MUNGE_SOCKET)
        time.sleep(0.1)


def _daemon(argv: list[str], env: dict[str, str] | None, root: Path) -> None:
    """Run a daemonising command; its output goes to a file, never to a pipe, so a
    child that keeps the descriptors cannot hold us up."""
    node = f"-{argv[argv.index('-N') + 1]}" if "-N" in argv else ""
    log = root / f"{Path(argv[0]).name}{node}.start.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError(
                f"{' '.join(argv)} did not daemonise in 30 s; "
                f"see {log} and the daemon logs in {root}"
            ) from None
    if rc != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {rc}: {log.read_text(errors='replace')}")


def start(root: Path, timeout: float = 60.0) -> Cluster:
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", *(f"spool/{n}" for n in NODES)):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(_conf(root), encoding="utf-8")
    cluster = Cluster(root, {**os.environ, "SLURM_CONF": str(conf)})
    _ensure_munge()
    try:
        daemons = [("slurmctld", [], "slurmctld.pid")] + [
            ("slurmd", ["-N", n], f"slurmd-{n}.pid") for n in NODES
        ]
        for daemon, args, pid_name in daemons:
            _daemon([daemon, "-f", str(conf), *args], cluster.env, root)
            pid_file = root / pid_name
            deadline = time.time() + 10
            while not pid_file.exists() and time.time() < deadline:
                time.sleep(0.1)
            cluster.pids.append(int(pid_file.read_text().strip()))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cluster.sinfo() == "idle":
                return cluster
            time.sleep(0.5)
        raise RuntimeError(
            f"the Slurm nodes never became idle; see {root}/slurmctld.log, slurmd-*.log"
        )
    except BaseException:
        stop(cluster)
        raise


def stop(cluster: Cluster) -> None:
    subprocess.run(["scancel", "--user", "root"], env=cluster.env, capture_output=True, timeout=30)
    for pid in reversed(cluster.pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
