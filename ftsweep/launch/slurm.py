"""Slurm executor: each run is one Slurm job submitted with ``sbatch``.

Why plain ``sbatch`` and not submitit: a run is already a command line (``accelerate
launch ... -m ftsweep.worker RUN_DIR``) that writes everything into its run directory.
submitit's value is pickling Python callables and their results, which ftsweep does not
need; a batch script is also what a user can read, copy and rerun by hand. The script is
kept in the run directory (``slurm.sh``).

A job asks Slurm for ``USR1`` ``signal_grace_s`` seconds before its time limit (and
gets it on preemption with a grace period). The script forwards it to the worker, which
saves a checkpoint and stops; the script then requeues its own job, and the requeued job
resumes from the checkpoint (at most ``max_requeues`` times). Job state comes from
``squeue`` / ``scontrol``; the run directory stays the truth for the run's outcome, and a
job that ended without a result is failed with Slurm's reason (TIMEOUT, OUT_OF_MEMORY,
NODE_FAIL, PREEMPTED, CANCELLED, ...).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from ftsweep.config.schema import SlurmOptions
from ftsweep.launch.executor import MAIN_ADDR, MAIN_PORT, NODE_RANK, Executor, Job, register
from ftsweep.rundir import PREEMPTED

# Slurm job states in which a job still holds (or waits for) its allocation.
LIVE = {
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "RESIZING",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
}
DEFAULT_CAPACITY = 1000  # the scheduler queues; the launcher need not hold runs back


class SlurmError(RuntimeError):
    pass


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"{argv[0]}: {exc}") from exc
    if out.returncode != 0:
        raise SlurmError(
            f"{' '.join(argv[:2])} failed ({out.returncode}): "
            f"{(out.stderr or out.stdout).strip()[:500]}"
        )
    return out.stdout


def batch_script(job: Job, opts: SlurmOptions) -> str:
    """The sbatch script of one run (pure: tested without Slurm)."""
    run_dir = job.log_path.parent
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=ftsweep-{job.run_id}",
        f"#SBATCH --output={job.log_path}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --chdir={job.cwd}",
        "#SBATCH --nodes=1",
        f"#SBATCH --time={opts.time}",
        f"#SBATCH --signal=B:USR1@{opts.signal_grace_s}",
        "#SBATCH --requeue",
    ]
    nodes = job.num_machines
    if nodes > 1:  # one task per node: each runs accelerate launch for its node's ranks
        lines += [f"#SBATCH --nodes={nodes}", "#SBATCH --ntasks-per-node=1"]
    else:
        lines.append("#SBATCH --ntasks=1")
    gpus = (
        ("gpus-per-node", opts.gpus_per_run // nodes)
        if nodes > 1 and opts.gpus_per_run
        else ("gpus", opts.gpus_per_run)
    )
    for flag, value in (
        ("partition", opts.partition),
        ("account", opts.account),
        ("qos", opts.qos),
        ("cpus-per-task", opts.cpus_per_task),
        ("mem", opts.mem),
        gpus,
        ("constraint", opts.constraint),
    ):
        if value is not None:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += [f"#SBATCH {extra}" for extra in opts.extra_sbatch]
    preempted = shlex.quote(str(run_dir / PREEMPTED))
    lines += [
        "set -u",
        opts.setup,
        'echo "ftsweep: slurm job $SLURM_JOB_ID on $(hostname), restart ${SLURM_RESTART_COUNT:-0}"',
        f"rm -f {preempted}",
        # USR1 is ignored by everything but the worker, which installs its own handler.
        # This shell forwards it to the run's process group, again every 2 s until the
        # worker has checkpointed (it may arrive before the worker's handler exists).
        *_command(job),
        "child=$!",
        "trap 'got=1' USR1",
        "while kill -0 $child 2>/dev/null; do",
        f"  if [ $got = 1 ] && [ ! -f {preempted} ]; then kill -USR1 -- -$child 2>/dev/null; fi",
        "  sleep 2 & wait $!",
        "done",
        "wait $child; rc=$?",
        f'if [ -f {preempted} ] && [ "${{SLURM_RESTART_COUNT:-0}}" -lt {opts.max_requeues} ]; then',
        '  echo "ftsweep: checkpointed before the time limit; requeueing"',
        "  scontrol requeue $SLURM_JOB_ID && exit 0",
        "fi",
        "exit $rc",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _command(job: Job) -> list[str]:
    """Script lines that start the run in the background as ``$child`` (its own session).

    Several machines: ``srun`` starts one ``accelerate launch`` per node (it forwards
    USR1 to them); each fills in its node's rank and the first node's address and port
    (placeholders in the worker command). The run directory must be on a file system
    every node sees.
    """
    lines = ["got=0", "trap '' USR1"]
    if job.num_machines <= 1:
        return [*lines, f"setsid {shlex.join(job.argv)} &"]
    fill = {
        NODE_RANK: '"$SLURM_NODEID"',
        MAIN_ADDR: '"$FTSWEEP_MAIN_ADDR"',
        MAIN_PORT: '"$FTSWEEP_MAIN_PORT"',
    }
    argv = " ".join(fill.get(a, shlex.quote(a)) for a in job.argv)
    return [
        'first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        # the address Slurm reaches the node at (its name, unless NodeAddr says otherwise)
        'FTSWEEP_MAIN_ADDR=$(scontrol show node -o "$first" | grep -o "NodeAddr=[^ ]*" '
        "| cut -d= -f2)",
        "FTSWEEP_MAIN_ADDR=${FTSWEEP_MAIN_ADDR:-$first}",
        # a port that differs between jobs sharing a first node
        "FTSWEEP_MAIN_PORT=$((20000 + SLURM_JOB_ID % 20000))",
        "export FTSWEEP_MAIN_ADDR FTSWEEP_MAIN_PORT",
        f"ftsweep_node() {{ exec {argv}; }}",
        "export -f ftsweep_node",
        *lines,
        f"setsid srun --nodes={job.num_machines} --ntasks-per-node=1 --kill-on-bad-exit=1 "
        "bash -c ftsweep_node &",
    ]


def job_info(job_id: str) -> dict[str, str] | None:
    """``scontrol show job`` as a dict, or None when Slurm no longer knows the job."""
    try:
        text = _run(["scontrol", "show", "job", "-o", job_id])
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return None
        raise
    info: dict[str, str] = {}
    for field in text.split():
        key, _, value = field.partition("=")
        info.setdefault(key, value)
    return info


class SlurmExecutor(Executor):
    name = "slurm"
    max_machines = 1 << 16  # srun starts one launcher per node of the allocation
    detachable = True  # Slurm runs its jobs whether or not ftsweep waits for them

    def __init__(self, options: SlurmOptions, capacity: int = DEFAULT_CAPACITY):
        self.options = options
        self.capacity = capacity
        self._jobs: list[Job] = []
        self._finished: list[tuple[Job, int]] = []
        self._last_poll = 0.0

    @classmethod
    def from_launch(cls, launch: Any, root: Path) -> SlurmExecutor:
        return cls(launch.slurm, launch.max_parallel or DEFAULT_CAPACITY)

    def submit(self, job: Job) -> None:
        job.started_at = time.time()
        script = job.log_path.parent / "slurm.sh"
        script.write_text(batch_script(job, self.options), encoding="utf-8")
        try:
            out = _run(["sbatch", "--parsable", str(script)], env=job.env)
        except SlurmError as exc:
            with open(job.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"ftsweep: could not submit to Slurm: {exc}\n")
            job.reason = str(exc)
            self._finished.append((job, 127))
            return
        job.job_id = out.strip().split(";")[0]
        self._jobs.append(job)

    def poll(self) -> list[tuple[Job, int]]:
        done, self._finished = self._finished, []
        if not self._jobs or time.time() - self._last_poll < self.options.poll_interval_s:
            return done
        self._last_poll = time.time()
        still = []
        for job in self._jobs:
            info = job_info(job.job_id)
            state = (info or {}).get("JobState", "")
            if info is not None and state in LIVE:
                still.append(job)
                continue
            rc = 0
            if info is not None:
                code, _, sig = info.get("ExitCode", "0:0").partition(":")
                rc = int(code or 0) or (128 + int(sig) if sig and sig != "0" else 0)
                if state != "COMPLETED":
                    reason = info.get("Reason", "None")
                    job.reason = f"Slurm {state}" + (f": {reason}" if reason != "None" else "")
                    rc = rc or 1
            else:
                job.reason = "job no longer known to Slurm"
            done.append((job, rc))
        self._jobs = still
        return done

    def running(self) -> int:
        return len(self._jobs) + len(self._finished)

    def reattach(self, job: Job) -> bool:
        info = job_info(job.job_id)
        if info is None or info.get("JobState") not in LIVE:
            return False
        self._jobs.append(job)
        return True

    def cancel_all(self) -> None:
        self.cancel([j.job_id for j in self._jobs])
        self._jobs = []

    def cancel(self, job_ids: list[str]) -> None:
        ids = [j for j in job_ids if j]
        if ids:
            _run(["scancel", *ids])


register("slurm")(SlurmExecutor.from_launch)
