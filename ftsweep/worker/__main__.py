"""The worker: trains and evaluates one run. Started by the launcher as

    accelerate launch [...] -m ftsweep.worker RUN_DIR

It reads spec.json and writes only inside RUN_DIR (invariant 2). The story:
setup → load → apply method → train → evaluate → save → result. Any exception is
recorded in failure.json first, then re-raised so the process exits non-zero.

Why the transformers Trainer and not a hand-written Accelerate loop: it already gives
DDP/FSDP/DeepSpeed through `accelerate launch`, schedulers, gradient accumulation,
checkpoint/resume and token counting; our hooks (callbacks.py) add what it lacks.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import psutil
import torch

from ftsweep.data.records import has_split
from ftsweep.methods import get_method
from ftsweep.objectives import TrainContext, get_objective
from ftsweep.rundir import ARTIFACTS, PROVENANCE, RESULT, RunDir, atomic_write_json, finite_or_none
from ftsweep.worker import faults, setup, sharded, start_answers
from ftsweep.worker.attempts import Attempt, LoopClock, totals
from ftsweep.worker.callbacks import EarlyStopping, Heartbeat, MetricsCallback, Progress
from ftsweep.worker.dataset import TokenDataset, pack
from ftsweep.worker.evaluate import evaluate
from ftsweep.worker.preempt import PreemptionCallback
from ftsweep.worker.probe import ProbeSet
from ftsweep.worker.pruning import PruneHandshake
from ftsweep.worker.tokcache import TokenCache
from ftsweep.worker.trainer import (
    SkipFinishedTraining,
    TrainingAlreadyFinished,
    evaluates_during_training,
    latest_checkpoint,
    training_finished_at,
    truncate_metrics,
)


def run(run_dir: Path) -> dict[str, Any]:
    # Wall time counts from process start, so heavy imports are included in it.
    started = psutil.Process().create_time()
    run = RunDir(run_dir)
    spec = run.spec()
    cfg, paths = spec["config"], spec["paths"]
    rank, world = setup.dist_info()
    is_main = rank == 0
    setup.configure_threads()

    from transformers import set_seed

    set_seed(cfg["seed"])
    progress = Progress()
    # Times of this attempt, kept in the run directory so a resumed run sums them all.
    attempt = Attempt.begin(run, started) if is_main else None
    try:
        with Heartbeat(run, progress, attempt) if is_main else contextlib.nullcontext():
            result = _train_and_evaluate(run, spec, cfg, paths, progress, started, attempt, world)
    except BaseException:
        if attempt is not None:
            attempt.end("failed")
        raise
    if attempt is not None:
        attempt.end(str(result.get("status", "complete")))
    return result


def _train_and_evaluate(
    run: RunDir,
    spec: dict,
    cfg: dict,
    paths: dict,
    progress: Progress,
    started: float,
    attempt: Attempt | None,
    world: int,
) -> dict[str, Any]:
    is_main = attempt is not None
    method = get_method(cfg["method"]["name"])()
    params = method.Params.model_validate({k: v for k, v in cfg["method"].items() if k != "name"})
    # What is optimised (sft, dpo, ...) picks the model's head and builds the trainer.
    objective = get_objective(cfg["training"].get("objective", "sft"))()
    model, tok = setup.load_model_and_tokenizer(
        cfg,
        paths["model"],
        method.load_kwargs(params),
        head=objective.head,
        parent=paths.get("parent_run"),
    )
    eval_split = cfg["eval"]["split"]
    cache = TokenCache.for_run(run, cfg, spec["fingerprints"])
    final_examples, counts_eval = setup.load_split(
        cfg, paths, eval_split, tok, cfg["eval"]["max_examples"], cache
    )
    # The "before" of forgetting and win_rate: the model as loaded, before the method.
    probes = ProbeSet.before_training(model, tok, cfg, paths) if is_main else None
    start = start_answers.before_training(model, tok, cfg, final_examples) if is_main else None
    model = method.apply(model, params)
    objective.prepare(model)
    trainable, total = setup.count_params(model)
    stopper = EarlyStopping(
        cfg["training"]["early_stopping"]["patience"],
        cfg["training"]["early_stopping"]["threshold"],
    )
    steps, tokens_seen = 0, 0
    handshake: PruneHandshake | None = None
    preempt: PreemptionCallback | None = None
    data_counts = {eval_split: counts_eval}
    if method.trains:
        train_ex, data_counts["train"] = setup.load_split(
            cfg, paths, "train", tok, cfg["data"]["max_train_samples"], cache
        )
        if cfg["data"]["packing"]:
            train_ex = pack(train_ex, cfg["data"]["max_length"])
        eval_ds = None
        if evaluates_during_training(cfg["training"]) and has_split(cfg["data"], "eval"):
            ev_ex, _ = setup.load_split(
                cfg, paths, "eval", tok, cfg["data"]["max_eval_samples"], cache
            )
            eval_ds = TokenDataset(ev_ex)
        resume = latest_checkpoint(run)
        if resume and is_main:  # before the metrics log opens its file handle
            truncate_metrics(run, resume)
        callbacks = [
            LoopClock(attempt, started),
            MetricsCallback(run, progress, is_main),
            stopper,
            *method.callbacks(params, model),
        ]
        if resume and training_finished_at(resume):
            callbacks.append(SkipFinishedTraining())  # load it, take no step
        if faults.enabled():
            callbacks.append(faults.StepFaults())
        preempt = PreemptionCallback().install()
        callbacks.append(preempt)
        trial = spec.get("trial") or {}
        if trial.get("prune") and eval_ds is not None:
            handshake = PruneHandshake(
                run, float(trial.get("decision_timeout_s", 300)), is_main, progress
            )
            callbacks.append(handshake)
        trainer = objective.build_trainer(
            TrainContext(model, tok, cfg, paths, run, callbacks, method, params, train_ex, eval_ds)
        )
        try:
            trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        except TrainingAlreadyFinished:
            pass  # the checkpoint is the trained model; its state is loaded
        faults.at("trained")
        objective.finish(trainer.model)
        steps = trainer.state.global_step
        tokens_seen = int(trainer.state.num_input_tokens_seen or 0)
        # Sharded (FSDP) weights are gathered into a fresh, plain copy on rank 0.
        model = sharded.trained_model(
            trainer,
            lambda: method.apply(
                setup.load_model_and_tokenizer(
                    cfg,
                    paths["model"],
                    method.load_kwargs(params),
                    head=objective.head,
                    parent=paths.get("parent_run"),
                )[0],
                params,
            ),
            is_main,
        )
        # On resume the Trainer replaces stateful callbacks with restored copies.
        stopper = next(
            cb for cb in trainer.callback_handler.callbacks if isinstance(cb, EarlyStopping)
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
    if attempt is None:
        return {}
    if handshake is not None and handshake.pruned is not None:
        return _record_pruned(run, handshake.pruned, steps)
    if preempt is not None and preempt.stopped_at is not None:
        preempt.record(run)  # checkpoint saved: the job requeues and resumes from it
        return {"status": "preempted", "step": preempt.stopped_at}
    device = next(model.parameters()).device
    progress.phase = "evaluate"
    t_eval = time.time()
    if attempt.record["setup_s"] is None:  # nothing trained: set-up ends here
        attempt.update(setup_s=t_eval - started)
    outcome = evaluate(model, tok, final_examples, cfg, eval_split, run, device, probes, start)
    t_save = time.time()
    art = run.file(ARTIFACTS)
    _save(method, model, tok, cfg, art)
    t_done = time.time()
    shutil.rmtree(run.file("checkpoints"), ignore_errors=True)
    attempt.update(eval_s=t_save - t_eval, save_s=t_done - t_save)
    # Times sum every attempt of the run (a resumed one too); set-up apart from the loop.
    timing = totals(run, attempt.snapshot())
    result = {
        "status": "complete",
        "finished_at": time.time(),
        **timing,
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": 100.0 * trainable / total if total else 0.0,
        "peak_memory_mb": setup.peak_memory_mb(device),
        # the final evaluation and the save (this attempt's), timed apart from the loop
        "eval_time_s": t_save - t_eval,
        "save_time_s": t_done - t_save,
        "tokens_seen": tokens_seen,  # the trained model's; tokens_per_s counts redone steps
        "steps": steps,
        "artifact_size_mb": setup.dir_size_mb(art),
        "eval_split": eval_split,
        "final_eval": {k: finite_or_none(v) for k, v in outcome.aggregate.items()},
        "eval_notes": outcome.notes,  # e.g. pass_at_1 without OS isolation
        "best_eval": stopper.best_metrics,
        "best_step": stopper.best_step,
        "stopped_early": stopper.stopped_early,
        "data_counts": data_counts,
        "world_size": world,
    }
    atomic_write_json(run.file(PROVENANCE), setup.provenance(spec, device, world))
    atomic_write_json(run.file(RESULT), result)  # last: its presence means complete
    faults.at("result")
    return result


def _record_pruned(run: RunDir, pruned: dict[str, Any], steps: int) -> dict[str, Any]:
    """A pruned trial's run: state pruned (never failed), with the step and value it reached."""
    shutil.rmtree(run.file("checkpoints"), ignore_errors=True)
    cause = f"pruned by the search at step {pruned['step']} (eval_loss {pruned['value']:.4g})"
    run.write_failure(cause, pruned=True, step=pruned["step"], value=pruned["value"], steps=steps)
    return {"status": "pruned", **pruned}


def _save(method: Any, model: Any, tok: Any, cfg: dict[str, Any], art: Path) -> None:
    art.mkdir(exist_ok=True)
    if method.trains:
        method.save(model, art)
    tok.save_pretrained(art)
    atomic_write_json(art / "training_config.json", cfg)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ftsweep.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    try:
        run(run_dir)
    except BaseException as exc:  # record first, then let the process fail (STYLE 6)
        rank, _ = setup.dist_info()
        if rank == 0:
            tail = "".join(traceback.format_exception(exc))[-4000:]
            RunDir(run_dir).write_failure(f"{type(exc).__name__}: {exc}"[:2000], tail)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
