"""View-models of a report: plain dataclasses built from query rows, in pure Python.

Contract: ``build_view`` takes the rows returned by ``queries`` and returns a
``ReportView`` that templates render without any further computation or lookup.
Every mapping a template indexes (``row.metrics[name]``) has a value for every name it
is indexed with, because templates run with StrictUndefined.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftsweep.report.cards import Card, decision_cards
from ftsweep.report.compare import PairRow, compare, group_by_run
from ftsweep.report.corpus import CorpusStats
from ftsweep.report.diff import DiffView
from ftsweep.report.fairness import FairnessWarning, fairness_warnings
from ftsweep.report.forgetting import ForgettingRow, forgetting_rows
from ftsweep.report.pareto import ParetoAxis, pareto_axes
from ftsweep.report.registry_facts import metric_aggregate, metric_direction
from ftsweep.report.rows import (
    InputSet,
    LeaderRow,
    config_rows,
    fmt_params,
    input_sets,
    leader_rows,
    metric_range,
)
from ftsweep.report.search_view import SearchView
from ftsweep.report.sensitivity import HeatMap, LrCurve, heat_maps, lr_curves
from ftsweep.report.stats import TEST_NAME, Stat, summarize

if TYPE_CHECKING:  # stages.py imports this module
    from ftsweep.report.stages import StageRow

CURVE_METRICS = ("loss", "eval_loss")
# names of the aggregate figures in the templates' ``svgs`` (never a curve metric's name)
PARETO_FIGURE = "decide-pareto"
LR_FIGURE = "decide-lr"
PROBLEM_STATES = ("failed", "pruned", "lost")
_PROVENANCE_DEPTH = 3
_PROVENANCE_SHOWN = 5


def higher_is_better(metric: str) -> bool:
    """Direction of a metric: as its evaluator declares (registry_facts), else a name heuristic."""
    direction = metric_direction(metric)
    if direction is not None:
        return direction
    lowered = metric.lower()
    return not ("loss" in lowered or "perplexity" in lowered)


def aggregation(metric: str) -> str:
    """How the metric's evaluator aggregates ("mean" when no evaluator owns it)."""
    return metric_aggregate(metric) or "mean"


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
    low: tuple[float, ...] = ()  # the lowest seed at each step (the band); () with one seed
    high: tuple[float, ...] = ()  # the highest seed at each step


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
    configs: tuple[LeaderRow, ...] = ()  # every configuration, best first
    pareto: tuple[ParetoAxis, ...] = ()
    lr_curves: tuple[LrCurve, ...] = ()
    heat_maps: tuple[HeatMap, ...] = ()
    warnings: tuple[FairnessWarning, ...] = ()
    memory_budget_mb: float | None = None
    forgetting: tuple[ForgettingRow, ...] = ()  # report/forgetting.py; () without the evaluator
    diff: DiffView | None = None  # report --against OTHER (report/diff.py); None without it
    stages: tuple[StageRow, ...] = ()  # report/stages.py; () when no run has a parent


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
    bounds = metric_range(primary)
    return [
        EffectRow(method=m, param=p, value=v, stat=summarize(vals, bounds))
        for (m, p, v), vals in sorted(cells.items())
        if values_per_param[(m, p)] > 1  # a parameter with one value has no effect to show
    ]


def _curves(leaders: list[LeaderRow], curve_rows: list[dict[str, Any]]) -> list[CurveSet]:
    """Per metric, one series per leaderboard row: the seeds' mean at each step, and the
    band from the lowest to the highest seed where the row has more than one seed."""
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
                banded = len(row.run_ids) > 1
                low = tuple(min(points[s]) for s in steps) if banded else ()
                high = tuple(max(points[s]) for s in steps) if banded else ()
                series.append(CurveSeries(row.label, steps, means, low, high))
        sets.append(CurveSet(metric, tuple(series)))
    return sets


def curves_from_means(leaders: list[LeaderRow], rows: list[dict[str, Any]]) -> list[CurveSet]:
    """CurveSets from ``queries.curve_means`` rows (already averaged over each row's seeds).

    The same curves as ``_curves`` computes from raw logged rows, seed band included
    (lowest to highest seed, for a row with more than one seed), with the averaging and
    downsampling done in DuckDB (a 1,000-run report would otherwise move millions of
    rows through Python). In a downsampled bin the band's ends are the bin's means of
    the per-step lowest and highest seed.
    """
    series: dict[tuple[str, str], tuple[list[int], list[float], list[float], list[float]]] = {}
    for r in rows:
        steps, values, low, high = series.setdefault((r["name"], r["label"]), ([], [], [], []))
        steps.append(int(r["step"]))
        values.append(float(r["value"]))
        low.append(float(r["low"]))
        high.append(float(r["high"]))
    out = []
    for metric in CURVE_METRICS:
        sets = []
        for row in leaders:
            key = (metric, row.label)
            if key in series:
                steps, values, low, high = series[key]
                banded = len(row.run_ids) > 1
                sets.append(
                    CurveSeries(
                        row.label,
                        tuple(steps),
                        tuple(values),
                        tuple(low) if banded else (),
                        tuple(high) if banded else (),
                    )
                )
        out.append(CurveSet(metric, tuple(sets)))
    return out


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


def _configs(
    runs: list[dict[str, Any]], evals: list[dict[str, Any]]
) -> tuple[
    str,
    bool,
    list[dict[str, Any]],
    dict[str, dict[str, float | None]],
    tuple[str, ...],
    list[LeaderRow],
]:
    """Primary metric, its direction, complete runs, metrics per run, metric names and
    one row per configuration: what the leaderboard is chosen from."""
    primary, _ = eval_spec(runs)
    higher = higher_is_better(primary)
    complete = [r for r in runs if r["status"] == "complete"]
    per_run: dict[str, dict[str, float | None]] = {r["run_id"]: {} for r in complete}
    for e in evals:
        per_run.setdefault(e["run_id"], {})[e["metric"]] = e["value"]
    names = {m for metrics in per_run.values() for m in metrics} | {primary}
    metric_names = (primary, *sorted(names - {primary}))
    configs = config_rows(complete, per_run, metric_names, higher)
    return primary, higher, complete, per_run, metric_names, configs


def leader_run_ids(runs: list[dict[str, Any]], evals: list[dict[str, Any]]) -> list[str]:
    """The runs behind the leaderboard's rows, chosen from aggregate metrics alone: the
    report then reads per-example rows and curves of these runs only."""
    configs = _configs(runs, evals)[-1]
    return sorted(rid for row in leader_rows(configs, [], None) for rid in row.run_ids)


def build_view(
    experiment: str,
    runs: list[dict[str, Any]],
    evals: list[dict[str, Any]],
    curve_rows: list[dict[str, Any]],
    examples: list[dict[str, Any]],
    corpus: CorpusStats | None = None,
    memory_budget_mb: float | None = None,
) -> ReportView:
    """Assemble the whole report of one experiment from query rows."""
    primary, higher, complete, per_run, metric_names, configs = _configs(runs, evals)
    by_run = group_by_run(examples)  # read once for the bootstrap and the pairwise tests
    leaders = leader_rows(configs, by_run, corpus)
    pairs = compare(leaders, by_run, higher, corpus)
    return ReportView(
        experiment=experiment,
        primary_metric=primary,
        higher_is_better=higher,
        metric_names=metric_names,
        leaderboard=tuple(leaders),
        effects=tuple(_effects(complete, per_run, primary)),
        pairs=tuple(pairs),
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
        cards=tuple(decision_cards(leaders, primary, higher, memory_budget_mb, pairs)),
        primary_aggregate=aggregation(primary),
        configs=tuple(configs),
        pareto=tuple(pareto_axes(configs, higher)),
        lr_curves=tuple(lr_curves(configs)),
        heat_maps=tuple(heat_maps(complete, per_run, primary, higher)),
        warnings=tuple(fairness_warnings(complete, leaders)),
        memory_budget_mb=memory_budget_mb,
        forgetting=tuple(forgetting_rows(leaders, primary, higher)),
    )
