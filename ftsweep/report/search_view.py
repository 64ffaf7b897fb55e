"""View-models of a search's report sections, in pure Python.

Contract: ``build_search_view`` takes the ``trials`` rows and ``runs`` rows of one
experiment and what its journal says (``StudyFacts``), and returns ``None`` when the
experiment has no trials (its report is then exactly a grid report), else a
``SearchView``. ``SearchView.sections`` names the partial templates to render, in order
(``templates/search_<name>.html`` and ``.md``, flat: the package data ships
``report/templates/*``): adding a section is one view-model function here plus one pair
of templates. Every mapping a template indexes has a value
for every key it is indexed with (templates run with StrictUndefined).

Trial numbers are the study's own: with ``budget: per_method`` each method's study counts
from 0, with ``budget: shared`` one study numbers every method's trials.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ftsweep.report.search_budget import (
    SEARCHED,
    TRIAL_STATES,
    BudgetRow,
    PruningRow,
    budget_rows,
    pruning_rows,
)
from ftsweep.report.search_queries import Distribution, StudyFacts
from ftsweep.report.search_shapes import (
    Axis,
    Parallel,
    ParallelLine,
    Pareto,
    ParetoPoint,
    fmt_value,
    method_params,
    parallel_sets,
    pareto_view,
)

SECTIONS = ("budget", "history", "best", "importance", "parallel", "pareto", "pruning")

__all__ = [
    "Axis",
    "BudgetRow",
    "Parallel",
    "ParallelLine",
    "Pareto",
    "ParetoPoint",
    "PruningRow",
    "build_search_view",
]


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str | None  # "maximize" / "minimize"; None when the journal is unreadable


@dataclass(frozen=True)
class TrialRow:
    study: str
    number: int
    method: str
    state: str
    warm_start: bool
    values: tuple[float | None, ...]  # one per objective; None unless complete
    params: str  # "k=v, ..." with the method's own names (no "<method>:" prefix)
    last_step: int | None


@dataclass(frozen=True)
class HistorySeries:
    method: str
    numbers: tuple[int, ...]  # trials with a value (complete), by number
    values: tuple[float, ...]
    best_numbers: tuple[int, ...]  # best-so-far after each of the method's trials
    best_values: tuple[float, ...]


@dataclass(frozen=True)
class History:
    figure: str
    metric: str
    series: tuple[HistorySeries, ...]
    n_without_value: int  # pruned, failed or unfinished trials: no objective value


@dataclass(frozen=True)
class BestCurve:
    method: str
    trials: tuple[int, ...]  # how many searched trials the method had (0: warm start only)
    best: tuple[float, ...]


@dataclass(frozen=True)
class BestRow:
    method: str
    study: str
    number: int
    values: tuple[float | None, ...]
    params: str
    n_trials: int  # searched trials of the method


@dataclass(frozen=True)
class BestSoFar:
    figure: str
    metric: str
    curves: tuple[BestCurve, ...]
    rows: tuple[BestRow, ...]
    note: str | None  # why there is no best (no direction known)


@dataclass(frozen=True)
class ImportanceRow:
    param: str
    value: float
    share: float  # of the study's total, 0..1


@dataclass(frozen=True)
class ImportanceTable:
    study: str
    label: str
    n_trials: int  # complete trials the importances come from
    rows: tuple[ImportanceRow, ...]
    reason: str | None  # why there are no rows


@dataclass(frozen=True)
class SearchView:
    sections: tuple[str, ...]
    objectives: tuple[Objective, ...]
    budget: str | None
    problem: str | None  # why the journal's facts are missing, if they are
    states: tuple[str, ...]
    trials: tuple[TrialRow, ...]
    budget_rows: tuple[BudgetRow, ...]
    history: History
    best: BestSoFar
    importances: tuple[ImportanceTable, ...]
    parallel: tuple[Parallel, ...]
    pareto: Pareto
    pruning: tuple[PruningRow, ...]


def _values(row: dict[str, Any], n: int) -> tuple[float | None, ...]:
    vals = list(row["objective_values"] or []) if row["state"] == "complete" else []
    vals = [float(v) if isinstance(v, int | float) and math.isfinite(v) else None for v in vals]
    return tuple(vals[:n] + [None] * (n - len(vals[:n])))


def _objectives(trials: list[dict[str, Any]], facts: StudyFacts) -> tuple[Objective, ...]:
    if facts.objectives:
        return tuple(Objective(m, d) for m, d in facts.objectives)
    n = max((len(r["objective_values"] or []) for r in trials), default=1) or 1
    return tuple(Objective(f"objective {i + 1}", None) for i in range(n))


def _better(direction: str | None) -> Any:
    return (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)


def _history(rows: list[TrialRow], metric: str, direction: str | None) -> History:
    by_method: dict[str, list[TrialRow]] = defaultdict(list)
    for r in rows:
        by_method[r.method].append(r)
    series = []
    better = _better(direction)
    for method, members in sorted(by_method.items()):
        members.sort(key=lambda r: r.number)
        scored = [(r.number, r.values[0]) for r in members if r.values[0] is not None]
        best_n: list[int] = []
        best_v: list[float] = []
        best: float | None = None
        for r in members:
            v = r.values[0]
            if v is not None and (best is None or better(v, best)):
                best = v
            if best is not None and direction is not None:
                best_n.append(r.number)
                best_v.append(best)
        series.append(
            HistorySeries(
                method,
                tuple(n for n, _ in scored),
                tuple(float(v) for _, v in scored if v is not None),
                tuple(best_n),
                tuple(best_v),
            )
        )
    missing = sum(1 for r in rows if r.values[0] is None)
    return History("search-history", metric, tuple(series), missing)


def _best(rows: list[TrialRow], metric: str, direction: str | None) -> BestSoFar:
    if direction is None:
        return BestSoFar("search-best", metric, (), (), "the objective's direction is unknown")
    better = _better(direction)
    by_method: dict[str, list[TrialRow]] = defaultdict(list)
    for r in rows:
        by_method[r.method].append(r)
    curves, best_rows = [], []
    for method, members in sorted(by_method.items()):
        warm = [r for r in members if r.warm_start]
        searched = sorted((r for r in members if not r.warm_start), key=lambda r: r.number)
        best: TrialRow | None = None
        best_value = 0.0
        xs: list[int] = []
        ys: list[float] = []
        # x = searched trials so far; the warm-start trials are the method's start, x = 0
        for at, group in [(0, warm), *((k, [r]) for k, r in enumerate(searched, 1))]:
            for r in group:
                v = r.values[0]
                if v is not None and (best is None or better(v, best_value)):
                    best, best_value = r, v
            if best is not None:
                xs.append(at)
                ys.append(best_value)
        if xs:
            curves.append(BestCurve(method, tuple(xs), tuple(ys)))
        if best is not None:
            best_rows.append(
                BestRow(method, best.study, best.number, best.values, best.params, len(searched))
            )
    sign = -1.0 if direction == "maximize" else 1.0  # best method first
    best_rows.sort(key=lambda b: (sign * (b.values[0] or 0.0), b.method))
    return BestSoFar("search-best", metric, tuple(curves), tuple(best_rows), None)


def _importances(trials: list[dict[str, Any]], facts: StudyFacts) -> list[ImportanceTable]:
    tables = []
    for study in sorted({r["study"] for r in trials}):
        info = facts.studies.get(study)
        if info is None:
            why = facts.problem or "the study is not in the journal"
            tables.append(ImportanceTable(study, study, 0, (), why))
            continue
        label = info.method if info.method else "every method (one shared study)"
        total = sum(info.importance.values.values())
        reason = info.importance.reason
        if reason is None and total <= 0:
            reason = "every importance is 0: no parameter separates the best trials from the rest"
        rows = (
            ()
            if reason
            else tuple(ImportanceRow(p, v, v / total) for p, v in info.importance.values.items())
        )
        tables.append(ImportanceTable(study, label, info.importance.n_trials, rows, reason))
    return tables


def _trial_row(row: dict[str, Any], n_objectives: int) -> TrialRow:
    named = sorted(method_params(row).items())
    params = ", ".join(f"{k}={fmt_value(v)}" for k, (_, v) in named)
    return TrialRow(
        study=row["study"],
        number=int(row["number"]),
        method=row["method"] or "?",
        state=row["state"],
        warm_start=row["source"] != SEARCHED,
        values=_values(row, n_objectives),
        params=params or "—",
        last_step=row["last_step"],
    )


def build_search_view(
    trials: list[dict[str, Any]], runs: list[dict[str, Any]], facts: StudyFacts
) -> SearchView | None:
    """The search sections of one experiment's report; None when it has no trials."""
    if not trials:
        return None
    objectives = _objectives(trials, facts)
    rows = [_trial_row(t, len(objectives)) for t in trials]
    first = objectives[0]
    dists: dict[tuple[str, str], Distribution] = {
        (s, p): d for s, info in facts.studies.items() for p, d in info.distributions.items()
    }
    pareto = pareto_view(
        [(r.method, r.study, r.number, r.values) for r in rows],
        [o.metric for o in objectives],
        [o.direction for o in objectives],
    )
    sections = tuple(s for s in SECTIONS if s != "pareto" or len(objectives) > 1)
    return SearchView(
        sections=sections,
        objectives=objectives,
        budget=facts.budget,
        problem=facts.problem,
        states=TRIAL_STATES,
        trials=tuple(rows),
        budget_rows=tuple(budget_rows(trials)),
        history=_history(rows, first.metric, first.direction),
        best=_best(rows, first.metric, first.direction),
        importances=tuple(_importances(trials, facts)),
        parallel=tuple(parallel_sets(trials, [r.values[0] for r in rows], dists, first.metric)),
        pareto=pareto,
        pruning=tuple(pruning_rows(trials, runs)),
    )
