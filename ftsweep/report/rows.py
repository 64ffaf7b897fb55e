"""Rows of a report: one per configuration — a method, its varied values, one set of
inputs — summarised over its seeds; the leaderboard is the best configuration per method.

What each cost column measures (the worker records it; ``runs`` in the store):

* ``train_time_s`` — the training loop alone, summed over the run's attempts;
* ``tokens_per_s`` — tokens trained per second of that loop;
* ``tokens_seen`` — tokens the trained model saw (non-padding);
* ``setup_time_s`` — model load, tokenisation and the like, apart from the loop;
* ``wall_time_s`` — the worker's whole life (set-up, loop, evaluation, save);
* ``attempts`` — worker processes the run took (more than one: it was resumed);
* ``peak_memory_mb`` — the device's peak (the process's RSS on CPU);
* ``artifact_size_mb`` — what the run saved on disk (the adapter, or the whole model).

Every cost is summarised with a floor of zero (``NON_NEGATIVE``).
"""

from __future__ import annotations

import functools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ftsweep.report.compare import Examples, group_by_run, per_example
from ftsweep.report.corpus import CorpusStats
from ftsweep.report.registry_facts import metric_bounds, trains_nothing
from ftsweep.report.stats import (
    NON_NEGATIVE,
    Bounds,
    Stat,
    bootstrap_mean,
    corpus_bootstrap,
    summarize,
)
from ftsweep.store.stage import DEFAULT_OBJECTIVE, run_objective

COSTS = (
    "trainable_params",
    "trainable_pct",
    "peak_memory_mb",
    "artifact_size_mb",
    "train_time_s",
    "tokens_per_s",
    "tokens_seen",
    "setup_time_s",
    "wall_time_s",
    "attempts",
)
_NO_STAT = Stat(None, None, 0)


def metric_range(metric: str) -> Bounds:
    """The (low, high) values a metric can take, as its evaluator declares (else unbounded)."""
    return metric_bounds(metric)


def fmt_params(params: dict[str, Any] | None) -> str:
    """Deterministic "k=v, k=v" of the varied values ("—" when nothing varies)."""
    items = sorted((params or {}).items())
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in items if k != "seed") or "—"


def run_lr(run: dict[str, Any]) -> float | None:
    """The learning rate a run trained with (its resolved config), None if unknown."""
    lr = ((run.get("config") or {}).get("training") or {}).get("lr")
    return float(lr) if isinstance(lr, int | float) and not isinstance(lr, bool) else None


@dataclass(frozen=True)
class LeaderRow:
    """One configuration over its seeds (``rank`` 0 unless it is on the leaderboard)."""

    rank: int
    method: str
    label: str  # the method, plus "(inputs k)" when the experiment's inputs changed
    inputs: int  # index into ReportView.inputs (0 when the inputs never changed)
    config: str  # the varied values, "k=v, ..."
    primary: Stat  # over seeds, with a 95% t-interval
    primary_examples: Stat  # over examples (seed-averaged), 95% bootstrap; n=0 without them
    metrics: dict[str, Stat]
    trainable_params: Stat
    trainable_pct: Stat
    peak_memory_mb: Stat
    wall_time_s: Stat
    tokens_per_s: Stat
    run_ids: tuple[str, ...]
    fixed: bool = False  # the method trains nothing: a fixed reference (trains_nothing)
    train_time_s: Stat = _NO_STAT
    setup_time_s: Stat = _NO_STAT
    tokens_seen: Stat = _NO_STAT
    artifact_size_mb: Stat = _NO_STAT
    attempts: Stat = _NO_STAT
    lr: float | None = None  # the learning rate of the config's runs (None if they differ)
    peak_memory_max_mb: float | None = None  # the highest seed's peak: what a budget must fit
    objective: str = DEFAULT_OBJECTIVE  # what the runs optimised (training.objective)


@dataclass(frozen=True)
class InputSet:
    """One set of input fingerprints (data files, base model) the experiment's runs used."""

    index: int
    fingerprints: dict[str, str]
    n_runs: int
    differs_in: tuple[str, ...]  # the fingerprint keys whose value differs between sets


def _inputs_key(run: dict[str, Any]) -> str:
    return _fingerprints_key(run.get("fingerprints") or {})


def _fingerprints_key(fingerprints: dict[str, Any]) -> str:
    """Canonical text of a run's fingerprints (json.dumps(..., sort_keys=True)), memoised:
    1,000 runs share a handful of fingerprint sets, and this is asked per run thrice."""
    try:
        return _fp_key_memo(tuple(sorted(fingerprints.items())))
    except TypeError:  # an unhashable value: no memo
        return json.dumps(fingerprints, sort_keys=True)


@functools.lru_cache(maxsize=64)
def _fp_key_memo(items: tuple[tuple[str, Any], ...]) -> str:
    return json.dumps(dict(items), sort_keys=True)


def input_sets(runs: list[dict[str, Any]]) -> list[InputSet]:
    """Distinct input fingerprints of the runs, in order of first appearance.

    Runs of one experiment trained on other data or another base model are different
    experiments in all but name: they must never be pooled as seeds of one row.
    """
    counts = Counter(_inputs_key(r) for r in runs)
    order = list(dict.fromkeys(_inputs_key(r) for r in runs))
    decoded = [json.loads(k) for k in order]
    keys = sorted({k for fp in decoded for k in fp})
    differs = tuple(k for k in keys if len({fp.get(k) for fp in decoded}) > 1)
    return [
        InputSet(i, fp, counts[k], differs)
        for i, (k, fp) in enumerate(zip(order, decoded, strict=True))
    ]


COUNTS = ("trainable_params", "tokens_seen", "attempts")  # printed exactly when whole


def _cost(runs: Iterable[dict[str, Any]], key: str) -> Stat:
    stat = summarize([r.get(key) for r in runs], NON_NEGATIVE)
    if key in COUNTS and stat.mean is not None and float(stat.mean).is_integer():
        # numbers.py prints ints exactly (counts) and floats to 3 digits: 1,115,264
        # parameters must not read as 1,120,000
        return replace(stat, mean=int(stat.mean))
    return stat


def objective_of(run: dict[str, Any]) -> str:
    """A run's objective: the store's column, else its config's (rows built by hand)."""
    return run.get("objective") or run_objective(run.get("config"))


def objective_method(method: str, objective: str) -> str:
    """The name of an objective × method group: "lora (dpo)", as the leaderboard labels it
    when an experiment has several objectives (and its inputs never changed)."""
    return f"{method} ({objective})"


def group_name(run: dict[str, Any], several_objectives: bool) -> str:
    """The group a run belongs to in per-method views: its method, or its objective ×
    method when the experiment has several objectives."""
    method = str(run["method"])
    return objective_method(method, objective_of(run)) if several_objectives else method


def _label(method: str, objective: str, inputs: int, objectives: int, sets: int) -> str:
    """The row's name: the method, plus its objective when the experiment has several
    and "inputs k" when its inputs changed, so rows are told apart (and grouped) by both."""
    tags = [objective] if objectives > 1 else []
    tags += [f"inputs {inputs + 1}"] if sets > 1 else []
    return f"{method} ({', '.join(tags)})" if tags else method


def _score(stat: Stat, higher: bool) -> float:
    if stat.mean is None:
        return float("-inf")
    return stat.mean if higher else -stat.mean


def config_rows(
    complete: list[dict[str, Any]],
    per_run: dict[str, dict[str, float | None]],
    metric_names: tuple[str, ...],
    higher: bool,
) -> list[LeaderRow]:
    """Every configuration (objective × method × varied values × input set) over its
    seeds, best first by the primary metric (``metric_names[0]``); ties by label, then
    config."""
    sets = {_fingerprints_key(s.fingerprints): s.index for s in input_sets(complete)}
    groups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for run in complete:
        key = (objective_of(run), run["method"], sets[_inputs_key(run)], fmt_params(run["params"]))
        groups[key].append(run)
    n_objectives = len({key[0] for key in groups})
    ranges = {m: metric_range(m) for m in metric_names}
    rows = []
    for (objective, method, inputs, config), members in groups.items():
        metrics = {
            m: summarize([per_run[r["run_id"]].get(m) for r in members], ranges[m])
            for m in metric_names
        }
        costs = {key: _cost(members, key) for key in COSTS}
        lrs = {run_lr(r) for r in members}
        peaks = [float(r["peak_memory_mb"]) for r in members if r.get("peak_memory_mb") is not None]
        rows.append(
            LeaderRow(
                rank=0,
                method=method,
                label=_label(method, objective, inputs, n_objectives, len(sets)),
                inputs=inputs,
                config=config,
                primary=metrics[metric_names[0]],
                primary_examples=_NO_STAT,
                metrics=metrics,
                run_ids=tuple(sorted(r["run_id"] for r in members)),
                fixed=trains_nothing(method),
                lr=lrs.pop() if len(lrs) == 1 else None,
                peak_memory_max_mb=max(peaks) if peaks else None,
                objective=objective,
                **costs,
            )
        )
    rows.sort(key=lambda r: (-_score(r.primary, higher), r.label, r.config))
    return rows


def _over_examples(
    run_ids: tuple[str, ...],
    examples: Mapping[str, Sequence[dict[str, Any]]],
    corpus: CorpusStats | None,
) -> Stat:
    """The primary metric over examples with a bootstrap interval (as a corpus if it is one)."""
    if corpus is None:
        return bootstrap_mean(list(per_example(examples, run_ids).values()))
    stats = corpus.for_runs(run_ids)
    if not stats:
        return _NO_STAT
    return corpus_bootstrap(np.stack([stats[ex] for ex in sorted(stats)]), corpus.score)


def leader_rows(
    configs: list[LeaderRow], examples: Examples, corpus: CorpusStats | None
) -> list[LeaderRow]:
    """The best configuration per method and input set (``configs`` is best first),
    ranked, with the bootstrap over examples (computed for these rows only)."""
    grouped = group_by_run(examples)
    seen: set[str] = set()
    rows: list[LeaderRow] = []
    for row in configs:
        if row.label not in seen:
            seen.add(row.label)
            rows.append(
                replace(
                    row,
                    rank=len(rows) + 1,
                    primary_examples=_over_examples(row.run_ids, grouped, corpus),
                )
            )
    return rows
