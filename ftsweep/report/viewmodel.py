"""View-models of a report: plain dataclasses built from query rows, in pure Python.

Contract: ``build_view`` takes the rows returned by ``queries`` and returns a
``ReportView`` that templates render without any further computation or lookup.
Every mapping a template indexes (``row.metrics[name]``) has a value for every name it
is indexed with, because templates run with StrictUndefined.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftsweep.report.cards import Card, decision_cards
from ftsweep.report.compare import PairRow, compare, per_example
from ftsweep.report.corpus import CorpusStats
from ftsweep.report.diff import DiffView
from ftsweep.report.forgetting import ForgettingRow, forgetting_rows
from ftsweep.report.search_view import SearchView
from ftsweep.report.stats import TEST_NAME, Stat, bootstrap_mean, corpus_bootstrap, summarize

CURVE_METRICS = ("loss", "eval_loss")
PROBLEM_STATES = ("failed", "pruned", "lost")
_PROVENANCE_DEPTH = 3
_PROVENANCE_SHOWN = 5


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: the evaluators' registry first, then a name heuristic."""
    try:  # imported lazily: evaluators may pull in heavy libraries the report never needs
        evaluators = importlib.import_module("ftsweep.evaluators")
    except ImportError:
        evaluators = None
    metric_direction = getattr(evaluators, "metric_direction", None)
    if metric_direction is not None:
        direction = metric_direction(metric)
        if direction is not None:
            return bool(direction)
    lowered = metric.lower()
    return not ("loss" in lowered or "perplexity" in lowered)


def aggregation(metric: str) -> str:
    """How the metric's evaluator aggregates ("mean" when no evaluator owns it)."""
    try:  # lazily, as for the direction
        evaluators = importlib.import_module("ftsweep.evaluators")
    except ImportError:
        return "mean"
    ask = getattr(evaluators, "metric_aggregate", None)
    return (ask(metric) if ask is not None else None) or "mean"


@dataclass(frozen=True)
class LeaderRow:
    rank: int
    method: str
    label: str  # the method, plus "(inputs k)" when the experiment's inputs changed
    inputs: int  # index into ReportView.inputs (0 when the inputs never changed)
    config: str  # the varied values of the best config, "k=v, ..."
    primary: Stat  # over seeds, with a 95% t-interval
    primary_examples: Stat  # over examples (seed-averaged), 95% bootstrap; n=0 without them
    metrics: dict[str, Stat]
    trainable_params: Stat
    trainable_pct: Stat
    peak_memory_mb: Stat
    wall_time_s: Stat
    tokens_per_s: Stat
    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class EffectRow:
    method: str
    param: str
    value: str
    stat: Stat


@dataclass(frozen=True)
class CurveSeries:
    method: str
    steps: tuple[int, ...]
    values: tuple[float, ...]  # mean over the best config's seeds at each step


@dataclass(frozen=True)
class CurveSet:
    metric: str
    series: tuple[CurveSeries, ...]


@dataclass(frozen=True)
class FailedRow:
    run_id: str
    method: str
    config: str
    status: str
    cause: str
    log_tail: str


@dataclass(frozen=True)
class ProvenanceRow:
    key: str
    values: tuple[str, ...]  # most common first, at most 5
    n_distinct: int


@dataclass(frozen=True)
class InputSet:
    """One set of input fingerprints (data files, base model) the experiment's runs used."""

    index: int
    fingerprints: dict[str, str]
    n_runs: int
    differs_in: tuple[str, ...]  # the fingerprint keys whose value differs between sets


@dataclass(frozen=True)
class ReportView:
    experiment: str
    primary_metric: str
    higher_is_better: bool
    metric_names: tuple[str, ...]
    leaderboard: tuple[LeaderRow, ...]
    effects: tuple[EffectRow, ...]
    pairs: tuple[PairRow, ...]
    curves: tuple[CurveSet, ...]
    failed: tuple[FailedRow, ...]
    provenance: tuple[ProvenanceRow, ...]
    status_counts: dict[str, int]
    inputs: tuple[InputSet, ...] = ()  # distinct data/model fingerprints; >1: inputs changed
    cards: tuple[Card, ...] = ()
    primary_aggregate: str = "mean"  # Evaluator.aggregate of the primary metric
    test_name: str = TEST_NAME
    search: SearchView | None = None  # the search sections; None for an experiment without trials
    forgetting: tuple[ForgettingRow, ...] = ()  # report/forgetting.py; () without the evaluator
    diff: DiffView | None = None  # report --against OTHER (report/diff.py); None without it


def fmt_params(params: dict[str, Any] | None) -> str:
    """Deterministic "k=v, k=v" of the varied values ("—" when nothing varies)."""
    items = sorted((params or {}).items())
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in items if k != "seed") or "—"


def eval_spec(runs: list[dict[str, Any]]) -> tuple[str, str | None]:
    """The experiment's primary metric and eval split (most common across runs)."""
    seen = Counter(
        (
            (r["config"] or {}).get("eval", {}).get("primary_metric"),
            (r["config"] or {}).get("eval", {}).get("split"),
        )
        for r in runs
    )
    for (metric, split), _ in seen.most_common():
        if metric:
            return str(metric), split
    return "eval_loss", None  # every run lacks one: eval_loss is what any trainer logs


def evaluator_params(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The experiment's ``eval.evaluator_params`` (most common across runs)."""
    seen = Counter(
        json.dumps(
            (r["config"] or {}).get("eval", {}).get("evaluator_params") or {}, sort_keys=True
        )
        for r in runs
    )
    return dict(json.loads(seen.most_common(1)[0][0])) if seen else {}


def _stat(runs: Iterable[dict[str, Any]], key: str) -> Stat:
    return summarize([r[key] for r in runs])


def _inputs_key(run: dict[str, Any]) -> str:
    return json.dumps(run.get("fingerprints") or {}, sort_keys=True)


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


def _over_examples(
    run_ids: tuple[str, ...], examples: list[dict[str, Any]], corpus: CorpusStats | None
) -> Stat:
    """The primary metric over examples with a bootstrap interval (as a corpus if it is one)."""
    if corpus is None:
        return bootstrap_mean(list(per_example(examples, run_ids).values()))
    stats = corpus.for_runs(run_ids)
    if not stats:
        return Stat(None, None, 0)
    return corpus_bootstrap(np.stack([stats[ex] for ex in sorted(stats)]), corpus.score)


def _leader_rows(
    complete: list[dict[str, Any]],
    per_run: dict[str, dict[str, float | None]],
    metric_names: tuple[str, ...],
    primary: str,
    higher: bool,
    examples: list[dict[str, Any]],
    corpus: CorpusStats | None,
) -> list[LeaderRow]:
    """Best config per method and input set (mean primary over seeds), best first."""
    sets = {json.dumps(s.fingerprints, sort_keys=True): s.index for s in input_sets(complete)}
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for run in complete:
        groups[(run["method"], sets[_inputs_key(run)], fmt_params(run["params"]))].append(run)
    best: dict[tuple[str, int], tuple[float, str]] = {}
    for (method, inputs, config), members in groups.items():
        mean = summarize([per_run[r["run_id"]].get(primary) for r in members]).mean
        score = float("-inf") if mean is None else (mean if higher else -mean)
        if (method, inputs) not in best or (score, config) > best[(method, inputs)]:
            best[(method, inputs)] = (score, config)
    ordered = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))
    rows = []
    for rank, ((method, inputs), (_, config)) in enumerate(ordered, 1):
        members = groups[(method, inputs, config)]
        run_ids = tuple(sorted(r["run_id"] for r in members))
        metrics = {
            m: summarize([per_run[r["run_id"]].get(m) for r in members]) for m in metric_names
        }
        rows.append(
            LeaderRow(
                rank=rank,
                method=method,
                label=method if len(sets) == 1 else f"{method} (inputs {inputs + 1})",
                inputs=inputs,
                config=config,
                primary=metrics[primary],
                primary_examples=_over_examples(run_ids, examples, corpus),
                metrics=metrics,
                trainable_params=_stat(members, "trainable_params"),
                trainable_pct=_stat(members, "trainable_pct"),
                peak_memory_mb=_stat(members, "peak_memory_mb"),
                wall_time_s=_stat(members, "wall_time_s"),
                tokens_per_s=_stat(members, "tokens_per_s"),
                run_ids=run_ids,
            )
        )
    return rows


def _effects(
    complete: list[dict[str, Any]], per_run: dict[str, dict[str, float | None]], primary: str
) -> list[EffectRow]:
    """Marginal mean ± std of the primary metric per value of each varied parameter."""
    cells: dict[tuple[str, str, str], list[float | None]] = defaultdict(list)
    for run in complete:
        for param, value in (run["params"] or {}).items():
            if param != "seed":
                key = (run["method"], param, json.dumps(value, sort_keys=True))
                cells[key].append(per_run[run["run_id"]].get(primary))
    values_per_param = Counter((m, p) for (m, p, _) in cells)
    return [
        EffectRow(method=m, param=p, value=v, stat=summarize(vals))
        for (m, p, v), vals in sorted(cells.items())
        if values_per_param[(m, p)] > 1  # a parameter with one value has no effect to show
    ]


def _curves(leaders: list[LeaderRow], curve_rows: list[dict[str, Any]]) -> list[CurveSet]:
    owner = {rid: row.label for row in leaders for rid in row.run_ids}
    acc: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in curve_rows:
        if r["run_id"] in owner:
            acc[(r["name"], owner[r["run_id"]])][int(r["step"])].append(float(r["value"]))
    sets = []
    for metric in CURVE_METRICS:
        series = []
        for row in leaders:
            points = acc.get((metric, row.label))
            if points:
                steps = tuple(sorted(points))
                means = tuple(sum(points[s]) / len(points[s]) for s in steps)
                series.append(CurveSeries(row.label, steps, means))
        sets.append(CurveSet(metric, tuple(series)))
    return sets


def curves_from_means(leaders: list[LeaderRow], rows: list[dict[str, Any]]) -> list[CurveSet]:
    """CurveSets from ``queries.curve_means`` rows (already averaged over each row's seeds).

    The same curves as ``_curves`` computes from raw logged rows, with the averaging and
    downsampling done in DuckDB (a 1,000-run report would otherwise move millions of
    rows through Python).
    """
    series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for r in rows:
        steps, values = series.setdefault((r["name"], r["label"]), ([], []))
        steps.append(int(r["step"]))
        values.append(float(r["value"]))
    return [
        CurveSet(
            metric,
            tuple(
                CurveSeries(row.label, tuple(series[key][0]), tuple(series[key][1]))
                for row in leaders
                if (key := (metric, row.label)) in series
            ),
        )
        for metric in CURVE_METRICS
    ]


def _flatten(prefix: str, value: Any, depth: int, out: dict[str, str]) -> None:
    if isinstance(value, dict) and depth < _PROVENANCE_DEPTH:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, depth + 1, out)
    else:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out[prefix] = text if len(text) <= 80 else text[:77] + "..."


def _provenance(runs: list[dict[str, Any]]) -> list[ProvenanceRow]:
    """Distinct values of every provenance / fingerprint field across the runs."""
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for run in runs:
        flat: dict[str, str] = {}
        _flatten(
            "",
            {"provenance": run["provenance"] or {}, "fingerprints": run["fingerprints"] or {}},
            0,
            flat,
        )
        for key, text in flat.items():
            seen[key][text] += 1
    return [
        ProvenanceRow(key, tuple(v for v, _ in c.most_common(_PROVENANCE_SHOWN)), len(c))
        for key, c in sorted(seen.items())
    ]


def build_view(
    experiment: str,
    runs: list[dict[str, Any]],
    evals: list[dict[str, Any]],
    curve_rows: list[dict[str, Any]],
    examples: list[dict[str, Any]],
    corpus: CorpusStats | None = None,
) -> ReportView:
    """Assemble the whole report of one experiment from query rows."""
    primary, _ = eval_spec(runs)
    higher = higher_is_better(primary)
    complete = [r for r in runs if r["status"] == "complete"]
    per_run: dict[str, dict[str, float | None]] = {r["run_id"]: {} for r in complete}
    for e in evals:
        per_run.setdefault(e["run_id"], {})[e["metric"]] = e["value"]
    names = {m for metrics in per_run.values() for m in metrics} | {primary}
    metric_names = (primary, *sorted(names - {primary}))
    leaders = _leader_rows(complete, per_run, metric_names, primary, higher, examples, corpus)
    return ReportView(
        experiment=experiment,
        primary_metric=primary,
        higher_is_better=higher,
        metric_names=metric_names,
        leaderboard=tuple(leaders),
        effects=tuple(_effects(complete, per_run, primary)),
        pairs=tuple(compare(leaders, examples, higher, corpus)),
        curves=tuple(_curves(leaders, curve_rows)),
        failed=tuple(
            FailedRow(
                r["run_id"],
                r["method"] or "?",
                fmt_params(r["params"]),
                r["status"],
                r["failure_cause"] or "(no cause recorded)",
                r["failure_log_tail"] or "",
            )
            for r in runs
            if r["status"] in PROBLEM_STATES
        ),
        provenance=tuple(_provenance(runs)),
        status_counts=dict(sorted(Counter(r["status"] for r in runs).items())),
        inputs=tuple(input_sets(complete)),
        cards=tuple(decision_cards(leaders, primary, higher)),
        primary_aggregate=aggregation(primary),
        forgetting=tuple(forgetting_rows(leaders, primary, higher)),
    )
