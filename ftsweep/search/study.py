"""Optuna studies of a search: their storage, samplers, pruners and names.

The studies live in Optuna's own journal storage, one file per experiment in the
workspace (``studies/<experiment>.journal``), so ``optuna-dashboard`` and
``optuna.load_study`` open them as they are. With ``budget: per_method`` each method
has a study of its own (``<experiment>/<method>``): its sampler learns only from its own
trials and its pruner compares a trial only with trials of the same method, so no method
is judged against another's loss scale. With ``budget: shared`` one study
(``<experiment>``) holds every method, ``method`` is a categorical parameter and the
other parameters are named ``<method>:<key>``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from ftsweep.config.schema import PrunerBlock, SearchBlock
from ftsweep.search.space import MethodSpace, SearchSpace
from ftsweep.search.summary import journal_path
from ftsweep.workspace import Workspace

# Experimental-feature warnings (TPE's multivariate/group) say nothing a user can act on.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(path: Path) -> JournalStorage:
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def study_name(experiment: str, method: str | None) -> str:
    return experiment if method is None else f"{experiment}/{method}"


def param_prefix(budget: str, method: str) -> str:
    """Names of a method's parameters in its study: plain per method, prefixed if shared."""
    return "" if budget == "per_method" else f"{method}:"


def method_seed(seed: int, method: str) -> int:
    """A per-method sampler seed that does not depend on the order methods are listed in."""
    return (seed + int(hashlib.sha256(method.encode()).hexdigest()[:8], 16)) % (2**31)


def ask_seed(seed: int, method: str, n_trials: int) -> int:
    """The sampler seed for a study's next ask (see SearchDriver._ask)."""
    digest = hashlib.sha256(f"{seed}/{method}/{n_trials}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31)


def make_sampler(search: SearchBlock, seed: int, parallel: bool) -> optuna.samplers.BaseSampler:
    s = search.sampler
    if s == "tpe":
        # group=True splits the conditional space by which parameters occur together
        # (method by method); constant_liar keeps parallel trials from piling up.
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            constant_liar=parallel,
            n_startup_trials=search.n_startup_trials,
        )
    if s in ("random", "grid"):  # grid points are enqueued; the sampler only fills gaps
        return optuna.samplers.RandomSampler(seed=seed)
    if s == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=search.n_startup_trials)
    if s == "cmaes":
        # CMA-ES handles float/int; categorical choices fall back to independent sampling.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if s == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if s == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=search.population_size)
    raise ValueError(f"unknown sampler {s!r}")


def make_pruner(
    block: PrunerBlock, override: dict[str, int], max_steps: int | None
) -> optuna.pruners.BasePruner:
    t = block.type
    warmup = override.get("n_warmup_steps", block.n_warmup_steps)
    grace = override.get("min_resource", block.min_resource)
    if t == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=block.n_startup_trials, n_warmup_steps=warmup
        )
    if t == "percentile":
        return optuna.pruners.PercentilePruner(
            block.percentile, n_startup_trials=block.n_startup_trials, n_warmup_steps=warmup
        )
    if t == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=grace, reduction_factor=block.reduction_factor
        )
    if t == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=grace,
            max_resource=max_steps or "auto",
            reduction_factor=block.reduction_factor,
        )
    if t == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=block.p_threshold, n_startup_steps=warmup)
    return optuna.pruners.NopPruner()


@dataclass
class Handle:
    """The study a method's trials live in, with that method's own pruner."""

    method: str
    study: optuna.Study
    space: MethodSpace
    prefix: str


def open_handles(
    ws: Workspace,
    experiment: str,
    search: SearchBlock,
    space: SearchSpace,
    max_steps: int | None,
    parallel: bool,
) -> dict[str, Handle]:
    storage = open_storage(journal_path(ws, experiment))
    directions: list[Literal["minimize", "maximize"]] = []
    for o in search.objectives:  # resolved from the evaluators at load time
        assert o.direction is not None, f"objective {o.metric} has no direction"
        directions.append(o.direction)
    handles: dict[str, Handle] = {}
    shared_sampler = make_sampler(search, search.seed, parallel)
    for ms in space.methods:
        per_method = search.budget == "per_method"
        name = study_name(experiment, ms.method if per_method else None)
        sampler = (
            make_sampler(search, method_seed(search.seed, ms.method), parallel)
            if per_method
            else shared_sampler
        )
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=directions,
            sampler=sampler,
            pruner=make_pruner(search.pruner, ms.pruner, max_steps),
            load_if_exists=True,
        )
        _check_directions(study, directions)
        sign = -1.0 if directions[0] == "maximize" else 1.0
        if study.user_attrs.get("intermediate_sign") != sign:  # written once, not per launch
            study.set_user_attr("experiment", experiment)
            study.set_user_attr("method", ms.method if per_method else None)
            # Pruning reports eval_loss; negated when the objective is maximised so that
            # higher is better for the pruner as for the study. The store un-negates it.
            study.set_user_attr("intermediate_metric", "eval_loss")
            study.set_user_attr("intermediate_sign", sign)
            study.set_user_attr("objectives", [o.model_dump() for o in search.objectives])
            study.set_user_attr("budget", search.budget)
        handles[ms.method] = Handle(ms.method, study, ms, param_prefix(search.budget, ms.method))
    return handles


def _check_directions(study: optuna.Study, directions: Sequence[str]) -> None:
    from ftsweep.errors import FtsweepError

    have = [d.name.lower() for d in study.directions]
    if have != directions:
        raise FtsweepError(
            f"study {study.study_name!r} in the workspace optimises {have} but the experiment "
            f"file now asks for {directions}; a study keeps its objectives: rename the "
            "experiment to start a new study"
        )


def decode_values(handle: Handle, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's stored parameters back into the space's values (method params + dotted)."""
    values = dict(handle.space.fixed)
    for key, dist in handle.space.dists.items():
        raw = params[handle.prefix + key]
        values[key] = json.loads(raw) if dist.kind == "choices" and dist.encoded else raw
    return values
