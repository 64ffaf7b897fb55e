"""Launch: plan, then run what is missing through an executor, ingesting as runs finish.

The launcher holds the workspace lock for the whole sweep (it is the store's only
writer, invariant 3). Each run is one ``accelerate launch`` process group writing into
its own run directory; after each one ends, its directory is ingested and a store
snapshot published, so `status`, `query` and `report` see progress while it runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from ftsweep.config.load import Experiment
from ftsweep.config.schema import LaunchBlock
from ftsweep.errors import ConfigError, FtsweepError, Problem
from ftsweep.launch.accel_config import write_accelerate_config
from ftsweep.launch.executor import MAIN_ADDR, MAIN_PORT, NODE_RANK, Executor, Job, make_executor
from ftsweep.launch.jobs import job_for, read_job_record, write_job_record
from ftsweep.launch.live import LiveView
from ftsweep.launch.retry import RetryPolicy
from ftsweep.launch.settle import outcome
from ftsweep.launch.storekeeper import StoreKeeper
from ftsweep.launch.watch import BusyWatch
from ftsweep.plan import Action, PlanItem, plan
from ftsweep.rundir import (
    SPEC,
    STALE_AFTER_ENV,
    WORKER_LOG,
    RunState,
    atomic_write_json,
)
from ftsweep.workspace import Workspace

# A reader refreshing the store holds the lock for a moment; a launch waits this long.
LOCK_WAIT_S = 60.0


@dataclass
class LaunchSummary:
    total: int = 0
    skipped: int = 0
    complete: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Failed in an earlier launch and not retried (no --retry-failed): still not complete.
    still_failed: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    # Still being trained by a worker of an earlier launch that is alive.
    busy: list[str] = field(default_factory=list)
    # Stopped early by a search's pruner: a decision, not a failure.
    pruned: list[str] = field(default_factory=list)
    # Submitted with --detach: running under the scheduler, not finished.
    detached: list[str] = field(default_factory=list)
    trials: int = 0  # search trials finished in this launch
    # Ended, but the outcome could not be written (a full disk): the next launch resumes.
    lost: list[str] = field(default_factory=list)
    # Why the store is behind the run directories (a full disk), if it is.
    store_problem: str | None = None
    # A stage's parent experiments, launched first (root first): (experiment, summary).
    parents: list[tuple[str, LaunchSummary]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 only when every run of the experiment (and of its parents) is complete and
        in the store."""
        mine = self.failed or self.still_failed or self.busy or self.lost or self.store_problem
        return 1 if mine or any(s.exit_code for _, s in self.parents) else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def worker_command(
    run_dir: Path,
    launch: LaunchBlock,
    base_dir: Path,
    cuda: bool,
    cfg: dict[str, Any] | None = None,
) -> list[str]:
    """The `accelerate launch` command line for one run.

    A run over several machines gets the placeholders ``NODE_RANK``, ``MAIN_ADDR`` and
    ``MAIN_PORT`` where each node's launcher needs its own rank and the first node's
    address; the executor that starts it on every node fills them in.
    """
    n, m = launch.num_processes, launch.num_machines
    # No --quiet: with it, `accelerate launch` turns a worker killed by a signal into a
    # bare exit 1; without it, the signal is named in worker.log (launch/exits.py).
    argv = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        str(m),
        "--num_processes",
        str(n),
        "--dynamo_backend",
        "no",
    ]
    if m > 1:
        argv += [
            "--machine_rank",
            NODE_RANK,
            "--main_process_ip",
            MAIN_ADDR,
            "--main_process_port",
            MAIN_PORT,
        ]
    else:
        argv += ["--main_process_port", str(_free_port())]
    config_file = None
    if launch.accelerate_config:
        config_file = (base_dir / launch.accelerate_config).resolve()
    elif launch.distributed.strategy != "ddp" and cfg is not None:
        config_file = write_accelerate_config(
            run_dir / "accelerate_config.yaml", cfg, launch.distributed.model_dump(), n
        )
    if config_file is not None:
        argv += ["--config_file", str(config_file)]
    elif n > 1:
        argv += ["--multi_gpu"]  # on CPU this is gloo DDP
    elif not cuda:
        argv += ["--cpu"]
    if config_file is None:
        argv += ["--mixed_precision", "no"]  # the worker's Trainer sets precision itself
    return argv + ["-m", "ftsweep.worker", str(run_dir)]


def worker_env(launch: LaunchBlock, offline: bool, parallel: int = 1) -> dict[str, str]:
    """The workers' environment; on CPU the cores are split between ``parallel`` runs."""
    env = dict(os.environ)
    cores = os.cpu_count() or 1
    threads = launch.threads_per_process or max(1, cores // (parallel * launch.num_processes))
    env.update(
        {
            "FTSWEEP_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            STALE_AFTER_ENV: str(launch.heartbeat_timeout_s),  # written into each heartbeat
        }
    )
    if offline:  # a local model never needs the hub; don't let a library try it
        env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    return env


def _prepare(item: PlanItem) -> None:
    rd = item.run_dir
    if item.action == Action.TRAIN:
        rd.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(rd.file(SPEC), item.run.to_json())
    elif item.action == Action.RETRY:
        rd.reset_for_retry()
    elif item.action == Action.RELAUNCH:
        rd.prepare_resume()


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM / SIGHUP (a closed terminal, a batch system) stop the sweep like Ctrl-C."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def launch(
    exp: Experiment,
    ws: Workspace,
    *,
    retry_failed: bool = False,
    executor: Executor | None = None,
    console: Any = None,
    executor_name: str | None = None,
    detach: bool = False,
    lock_wait_s: float = LOCK_WAIT_S,
) -> LaunchSummary:
    """Train what is missing (and run the search); ``detach`` submits and returns.

    ``lock_wait_s``: how long to wait for a workspace another process holds (saying
    at once whom it waits for), 0 to fail at once."""
    with _stop_on_signals():
        parents = []
        if exp.stage is not None:  # the parent experiment first, through this same path
            parents = _launch_parent(
                exp, ws, retry_failed, executor, console, executor_name, detach, lock_wait_s
            )
        summary = _launch(
            exp, ws, retry_failed, executor, console, executor_name, detach, lock_wait_s
        )
        summary.parents = parents
        return summary


def _launch_parent(
    exp: Experiment,
    ws: Workspace,
    retry_failed: bool,
    executor: Executor | None,
    console: Any,
    executor_name: str | None,
    detach: bool,
    lock_wait_s: float,
) -> list[tuple[str, LaunchSummary]]:
    """Train the stage's parent experiment's missing runs (its own parents first), then
    bind the stage to the selected parent run. Returns the parents' summaries."""
    from ftsweep.config.stages import bind
    from ftsweep.report_settings import record_settings

    stage = exp.stage
    parent = stage.parent
    out: list[tuple[str, LaunchSummary]] = []
    if not detach:
        record_settings(ws, parent.spec.experiment, parent.spec.report.model_dump(mode="json"))
        done = launch(
            parent,
            ws,
            retry_failed=retry_failed,
            executor=executor,
            console=console,
            executor_name=executor_name,
            lock_wait_s=lock_wait_s,
        )
        out = [*done.parents, (parent.spec.experiment, done)]
    bind(exp, ws)
    name = parent.spec.experiment
    if stage.run_id is None:
        raise FtsweepError(
            f"the parent experiment {name!r} still has runs to train"
            + (
                " (--detach cannot chain a stage: launch the parent first, then this file "
                "once it completed)"
                if detach
                else " (busy in another launch?); launch again when they end"
            )
        )
    state = ws.run_dir(name, stage.run_id).read_state(
        stale_after=parent.spec.launch.heartbeat_timeout_s
    )
    if state != RunState.COMPLETE:
        raise FtsweepError(
            f"the parent run {stage.run_id} of {name!r} is {state}, not complete: "
            f"`ftsweep status` and its worker.log say why (`--retry-failed` retries it)"
        )
    con = console or _stderr()
    con.print(
        f"stage: {escape(exp.spec.experiment)} starts from {escape(name)} run "
        f"{stage.run_id} ({escape(stage.how)})",
        highlight=False,
    )
    for warning in stage.warnings:
        con.print(f"[yellow]warning[/] {escape(warning)}", highlight=False)
    return out


def _launch(
    exp: Experiment,
    ws: Workspace,
    retry_failed: bool,
    executor: Executor | None,
    console: Any,
    executor_name: str | None,
    detach: bool,
    lock_wait_s: float,
) -> LaunchSummary:
    started = time.time()
    lb = exp.spec.launch
    executor = executor or make_executor(executor_name or lb.executor, lb, ws.root)
    if lb.num_machines > executor.max_machines:  # bad input: exit 2, before any run dir
        raise ConfigError(
            [
                Problem(
                    ("launch", "num_machines"),
                    f"the {executor.name} executor runs a job on at most "
                    f"{executor.max_machines} machine(s)",
                    value=lb.num_machines,
                    has_value=True,
                    valid="executor: slurm (or --executor slurm) for multi-node runs",
                    file=str(exp.file),
                )
            ]
        )
    if detach:
        _check_detach(exp, executor)

    def waiting(holder: str) -> None:
        (console or _stderr()).print(
            f"waiting up to {lock_wait_s:g} s for the workspace lock of {escape(str(ws.root))}, "
            f"held by {escape(holder)} (`--wait SECONDS` to wait longer, `--no-wait` not to)",
            highlight=False,
        )

    with ws.lock(wait_s=lock_wait_s, on_wait=waiting):
        items = plan(exp, ws, retry_failed)
        summary = LaunchSummary(total=len(items))
        keeper = StoreKeeper(ws, exp.spec.experiment, console)
        keeper.start()
        cuda = _cuda()
        local_model = Path(exp.paths["model"]).is_dir() if exp.paths else True
        env = worker_env(
            lb, offline=local_model and exp.spec.data.hub is None, parallel=executor.capacity
        )
        base_dir = exp.file.resolve().parent
        by_id = {i.run.run_id: i for i in items}
        adopted = _reattach(items, executor, env)
        todo = [i for i in items if i.will_train and i.run.run_id not in adopted]
        summary.skipped = len(items) - len(todo) - len(adopted)
        summary.still_failed = [
            i.run.run_id for i in items if i.state == RunState.FAILED and not i.will_train
        ]
        watch = BusyWatch(
            [i for i in items if i.action == Action.BUSY and i.run.run_id not in adopted],
            lb.heartbeat_timeout_s,
        )
        summary.busy = watch.pending()
        queue = longest_first(todo)

        def submit(item: PlanItem, view: Any) -> None:
            by_id[item.run.run_id] = item
            _prepare(item)
            job = Job(
                item.run.run_id,
                worker_command(item.run_dir.path, lb, base_dir, cuda, item.run.config),
                env,
                Path.cwd(),
                item.run_dir.file(WORKER_LOG),
                num_processes=lb.num_processes,
                num_machines=lb.num_machines,
            )
            executor.submit(job)
            if job.job_id:
                write_job_record(item.run_dir, executor, job)
            view.started(item)

        if detach:
            for item in queue:
                submit(item, _Printer(console))
            summary.detached = [i.run.run_id for i in queue]
            summary.wall_s = time.time() - started
            return summary
        search = None  # started once the grid's runs are done, so warm_start sees them
        retry = RetryPolicy(lb.max_retries, lb.retry_backoff_s)
        with LiveView(console, items, summary) as view:
            for run_id in adopted:
                view.started(by_id[run_id])
            watch.announce(view.console)
            try:
                while (
                    queue
                    or executor.running()
                    or retry.waiting()
                    or watch.pending()
                    or _search_left(exp, search)
                ):
                    queue[:0] = retry.due()
                    _settle_watched(watch, queue, summary, keeper, view)
                    if search is None and exp.spec.search and not queue and not executor.running():
                        search = _search_driver(exp, ws, executor.capacity, retry_failed)
                    while executor.running() < executor.capacity:
                        nxt = queue.pop(0) if queue else (search.next_item() if search else None)
                        if nxt is None:
                            break
                        submit(nxt, view)
                    for job, rc in executor.poll():
                        item = by_id[job.run_id]
                        state = outcome(item.run_dir, job, rc, keeper)
                        if state == RunState.FAILED and not search:
                            delay = retry.consider(item, item.run_dir.failure())
                            if delay is not None:
                                view.retrying(
                                    item, retry.retries[item.run.run_id], lb.max_retries, delay
                                )
                                keeper.ingest([item.run_dir])
                                continue
                        {
                            RunState.COMPLETE: summary.complete,
                            RunState.LOST: summary.lost,
                            RunState.PRUNED: summary.pruned,
                        }.get(state, summary.failed).append(job.run_id)
                        if search:
                            search.finished(job.run_id, state)
                        keeper.ingest([item.run_dir], search)
                        view.finished(item, state)
                    if search:
                        search.serve()
                        if (
                            not executor.running()
                            and not queue
                            and not search.done()
                            and not search.queue
                            and search.stalled()
                        ):
                            raise RuntimeError(
                                "search stalled: trials are active but none of "
                                "their runs can start (a bug; please report)"
                            )
                    view.refresh()
                    busy = executor.running() or retry.waiting() or watch.pending()
                    time.sleep(0.3 if busy else 0.0)
            except BaseException:  # Ctrl-C, SIGTERM/SIGHUP (see _stop_on_signals), any error
                executor.cancel_all()  # no orphaned workers: their runs show as lost
                retry.cancel()  # their failure.json stays: --retry-failed resumes them
                raise
            finally:
                summary.busy = watch.pending()  # only if stopped while waiting for them
                keeper.ingest(None, search)
        summary.store_problem = keeper.problem
        if search:
            summary.total += len(search.trained)
            summary.trials = search.told
    summary.wall_s = time.time() - started
    return summary


def _settle_watched(
    watch: BusyWatch, queue: list[PlanItem], summary: LaunchSummary, keeper: StoreKeeper, view: Any
) -> None:
    """Count the earlier launch's runs that ended; queue those whose worker died."""
    for item, state in watch.poll():
        if item.action == Action.RELAUNCH:
            queue.append(item)
            continue
        {RunState.COMPLETE: summary.complete, RunState.PRUNED: summary.pruned}.get(
            state, summary.failed
        ).append(item.run.run_id)
        keeper.ingest([item.run_dir])
        view.finished(item, state)


class _Printer:
    """What --detach shows instead of the live view: one line per submitted run."""

    def __init__(self, console: Any):
        self.console = console or _stderr()

    def started(self, item: PlanItem) -> None:
        self.console.print(
            f"submitted {item.run.run_id}  {escape(item.run.method)} "
            f"{escape(str(item.run.params))} seed={item.run.seed}"
        )


def _check_detach(exp: Experiment, executor: Executor) -> None:
    if not executor.detachable:
        raise FtsweepError(
            f"--detach needs an executor whose jobs run on without ftsweep "
            f"(slurm); {executor.name} runs need their launcher to schedule them"
        )
    if exp.spec.search is not None:
        raise FtsweepError(
            "--detach cannot run a search: each trial is asked for when a slot "
            "frees, which needs a live launcher"
        )


def _reattach(items: list[PlanItem], executor: Executor, env: dict[str, str]) -> set[str]:
    """Take over runs whose job an earlier launcher submitted and that still run."""
    adopted: set[str] = set()
    for item in items:
        if item.action not in (Action.BUSY, Action.RELAUNCH):
            continue
        record = read_job_record(item.run_dir)
        if record is None or record.get("executor") != executor.name:
            continue
        job = job_for(item.run_dir, record, Path.cwd(), env)
        if executor.reattach(job):
            adopted.add(item.run.run_id)
        elif item.action == Action.BUSY:
            # A fresh heartbeat from another host, but the scheduler says the job is
            # gone: the worker died with it, so the run is lost and trains again.
            item.state, item.action = str(RunState.LOST), Action.RELAUNCH
    return adopted


def longest_first(items: list[PlanItem]) -> list[PlanItem]:
    """Runs with the most training steps first, so a sweep's tail is short runs.

    Stable: runs of equal length keep the matrix order. A run bounded by epochs (no
    max_steps) counts as long; a method that does not train, as the shortest.
    """

    def steps(item: PlanItem) -> float:
        from ftsweep.methods import get_method

        if not get_method(item.run.method).trains:
            return 0.0
        return float(item.run.config["training"].get("max_steps") or float("inf"))

    return sorted(items, key=steps, reverse=True)


def _search_left(exp: Experiment, search: Any) -> bool:
    if exp.spec.search is None:
        return False
    return search is None or not search.done()


def _search_driver(exp: Experiment, ws: Workspace, capacity: int, retry_failed: bool) -> Any:
    if exp.spec.search is None:
        return None
    from ftsweep.search.driver import SearchDriver

    return SearchDriver(exp, ws, capacity, retry_failed)
