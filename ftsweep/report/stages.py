"""The Stages section: each stage's runs against the run they started from.

A run with ``model.from_run`` (``runs.parent_run_id``) continues another run's trained
weights — DPO after SFT, say. The question a stage answers is "did it gain over its
parent?", so for each leaderboard row (an objective × method group, its best config)
whose runs have parents, and for each metric both sides report:

* **gain over seeds** — child − parent per child run (each against its own parent),
  with a 95% t-interval over the child's seeds (``stats.summarize``);
* **gain over examples** — per test example, the child's score (averaged over its
  seeds) minus the parent's (averaged over the parents), with a 95% percentile
  bootstrap over examples (``stats.bootstrap_mean``); only when both scored the same
  eval file (the ``data.<split>`` fingerprints agree) and the metric is a mean of
  per-example scores (a corpus metric such as BLEU is not);
* **the verdict** of the report's one rule (``compare.py``): a paired test on the
  per-example scores (McNemar or sign-flip), Holm-corrected across the whole table,
  and the seed check must agree. The parent is one trained model that every child
  seed starts from, so a single parent is a *fixed reference*: the child's seed
  interval must exclude the parent's value. Several parents have their own interval.

**The parent scored on the stage's own data.** A stage often reads other data than its
parent did (DPO on preference pairs after SFT on instructions), so the parent never
scored the stage's metrics (preference_accuracy) or its test file. An untrained run of
the stage's own experiment (``base``) that starts from the same parent *is* the parent,
evaluated with the stage's data and evaluators: when there is one, it stands in for the
parent on every metric and the paired tests use its per-example scores. The section
names it; the base row itself is not a stage of its own.

Parents usually belong to another experiment of the same store, so they are read by
run id. ``load_stages`` does the reading (SQL lives in ``queries``); ``build_stages``
is pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from duckdb import DuckDBPyConnection

from ftsweep.report import queries
from ftsweep.report.compare import PairRow, _verdict, compare, per_example
from ftsweep.report.registry_facts import trains_nothing
from ftsweep.report.rows import LeaderRow, fmt_params, metric_range, objective_of
from ftsweep.report.stats import UNBOUNDED, Stat, bootstrap_mean, holm, summarize
from ftsweep.report.viewmodel import aggregation, higher_is_better
from ftsweep.store.stage import parent_run_id

BETTER, WORSE, SAME, NOT_COMPARED = "better", "worse", "indistinguishable", "not compared"
_NO_STAT = Stat(None, None, 0)


@dataclass(frozen=True)
class Parent:
    """The run a stage started from, as the store knows it (``experiment`` None: the
    run is not in the store — its experiment was never ingested here)."""

    run_id: str
    experiment: str | None
    method: str | None
    objective: str | None
    config: str
    # The untrained run of this experiment that scored the parent on its data (its
    # base row), None when the parent's own evaluation is compared.
    scored_by: str | None = None


@dataclass(frozen=True)
class MetricGain:
    metric: str
    higher_is_better: bool
    child: Stat  # the metric over the child's seeds
    parent: Stat  # over its distinct parents (n = 1: one fixed parent)
    gain: Stat  # child − parent per child run, 95% t-interval over seeds
    gain_examples: Stat  # per-example child − parent, 95% bootstrap over examples; n=0: none
    pair: PairRow | None  # the paired test and verdict; None when not tested
    outcome: str  # BETTER, WORSE, SAME (no detectable difference) or NOT_COMPARED
    verdict: str


@dataclass(frozen=True)
class StageRow:
    label: str  # the leaderboard row's label (method, objective when several)
    objective: str
    method: str
    config: str
    run_ids: tuple[str, ...]  # the child runs (seeds) behind the row
    parents: tuple[Parent, ...]
    gains: tuple[MetricGain, ...]
    note: str  # why some comparison could not be made ("" when all could)


@dataclass(frozen=True)
class _Side:
    """One side of a comparison (compare's ``Row``)."""

    label: str
    primary: Stat
    run_ids: tuple[str, ...]
    fixed: bool


def _parents(
    children: Sequence[dict[str, Any]],
    known: dict[str, dict[str, Any]],
    standins: dict[str, dict[str, Any]],
) -> tuple[Parent, ...]:
    ids = sorted({str(_parent_id(r)) for r in children})
    out = []
    for rid in ids:
        run = known.get(rid)
        scored_by = standins[rid]["run_id"] if rid in standins else None
        if run is None:
            out.append(Parent(rid, None, None, None, "—", scored_by))
        else:
            out.append(
                Parent(
                    rid,
                    run["experiment"],
                    run["method"],
                    objective_of(run),
                    fmt_params(run["params"]),
                    scored_by,
                )
            )
    return tuple(out)


def standins_of(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """parent run id -> this experiment's untrained run that starts from it (its base
    row: the parent scored on this experiment's data and evaluators)."""
    out: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r["run_id"]):
        pid = _parent_id(run)
        if pid and trains_nothing(run.get("method")):
            out.setdefault(pid, run)
    return out


def _parent_id(run: dict[str, Any]) -> str | None:
    return run.get("parent_run_id") or parent_run_id(run.get("config"))


def _same_eval_file(
    children: Sequence[dict[str, Any]], parents: Sequence[dict[str, Any]], split: str | None
) -> bool:
    """False when the two sides' eval-split files are known and differ (fingerprints)."""
    key = f"data.{split}" if split else None
    if key is None:
        return True
    known = {(r.get("fingerprints") or {}).get(key) for r in [*children, *parents]} - {None}
    return len(known) <= 1


def _gain_examples(
    examples: Sequence[dict[str, Any]], child: tuple[str, ...], parent: tuple[str, ...]
) -> Stat:
    sa, sb = per_example(examples, child), per_example(examples, parent)
    shared = sorted(set(sa) & set(sb))
    return bootstrap_mean([sa[e] - sb[e] for e in shared])


def _unpaired(metric: str, paired: bool, rows: Sequence[dict[str, Any]]) -> str:
    """Why a metric gets no paired test ("" when it gets one)."""
    if not paired:
        return "the two scored different eval files"
    if aggregation(metric) == "corpus":
        return "a corpus metric is not a mean of per-example scores"
    return "" if rows else "no per-example scores"


def _parent_label(parents: Sequence[dict[str, Any]]) -> str:
    # the section's parent column names them; the verdict needs only the relation
    return "its parent" if len(parents) == 1 else f"its {len(parents)} parents"


def _metric_gain(
    row: LeaderRow,
    metric: str,
    children: Sequence[dict[str, Any]],
    parents: Sequence[dict[str, Any]],
    per_run: dict[str, dict[str, float | None]],
    examples: Sequence[dict[str, Any]],
    paired: bool,
) -> MetricGain | None:
    """One metric's gain of a stage row over its parents; None if a side lacks it."""
    bounds, higher = metric_range(metric), higher_is_better(metric)
    theirs = {p["run_id"]: per_run.get(p["run_id"], {}).get(metric) for p in parents}
    mine = {r["run_id"]: per_run.get(r["run_id"], {}).get(metric) for r in children}
    child = summarize(list(mine.values()), bounds)
    parent = summarize(list(theirs.values()), bounds)
    if child.n == 0 or parent.n == 0:
        return None
    diffs = []
    for run in children:  # each child against its own parent
        a, b = mine[run["run_id"]], theirs.get(_parent_id(run) or "")
        if a is not None and b is not None:
            diffs.append(a - b)
    base = MetricGain(
        metric, higher, child, parent, summarize(diffs, UNBOUNDED), _NO_STAT, None, NOT_COMPARED, ""
    )
    rows = [e for e in examples if e["metric"] == metric]
    why = _unpaired(metric, paired, rows)
    if why:
        return replace(base, verdict=why)
    child_ids = tuple(sorted(mine))
    parent_ids = tuple(sorted(rid for rid, v in theirs.items() if v is not None))
    sides = [
        _Side(row.label, child, child_ids, row.fixed),
        _Side(_parent_label(parents), parent, parent_ids, len(parent_ids) == 1),
    ]
    return replace(
        base,
        gain_examples=_gain_examples(rows, child_ids, parent_ids),
        pair=compare(sides, rows, higher)[0],
        outcome="",  # set with the verdict, once the table's p-values are corrected
    )


def _settle(gains: list[MetricGain]) -> list[MetricGain]:
    """Holm-correct the table's tests together, then give each its verdict."""
    corrected = holm([g.pair.p_value if g.pair is not None else None for g in gains])
    out = []
    for g, q in zip(gains, corrected, strict=True):
        if g.pair is None:
            out.append(g)
            continue
        pair = _verdict(replace(g.pair, p_holm=q), g.higher_is_better)
        outcome = SAME if pair.better is None else BETTER if pair.better == pair.a else WORSE
        out.append(replace(g, pair=pair, outcome=outcome, verdict=pair.verdict))
    return out


def _stage_row(
    row: LeaderRow,
    children: Sequence[dict[str, Any]],
    known: dict[str, dict[str, Any]],
    per_run: dict[str, dict[str, float | None]],
    examples: Sequence[dict[str, Any]],
    metric_names: Sequence[str],
    split: str | None,
    standins: dict[str, dict[str, Any]],
) -> StageRow:
    """A row's gains over its parents, their verdicts not yet given (``_settle``)."""
    parents = _parents(children, known, standins)
    notes = []
    if all(p.scored_by for p in parents):  # the parent scored on this experiment's data
        found = [standins[p.run_id] for p in parents]
        children = [
            {**r, "parent_run_id": standins[str(_parent_id(r))]["run_id"]} for r in children
        ]
        notes.append(
            "the parent scored on this experiment's data by its untrained run "
            + ", ".join(sorted({str(p.scored_by) for p in parents}))
        )
    else:
        found = [known[p.run_id] for p in parents if p.run_id in known]
    missing = [p.run_id for p in parents if p.experiment is None]
    if missing:
        notes.append(f"parent run {', '.join(missing)} is not in the store: ingest its experiment")
    if len(children) < len(row.run_ids):
        notes.append(f"{len(row.run_ids) - len(children)} of the row's runs have no parent")
    paired = _same_eval_file(children, found, split)
    if not paired:
        notes.append(
            f"the parent scored another {split} file (data.{split} fingerprint): "
            "gains over seeds only, no paired test"
        )
    gains = [_metric_gain(row, m, children, found, per_run, examples, paired) for m in metric_names]
    return StageRow(
        label=row.label,
        objective=row.objective,
        method=row.method,
        config=row.config,
        run_ids=tuple(r["run_id"] for r in children),
        parents=parents,
        gains=tuple(g for g in gains if g is not None),
        note="; ".join(notes),
    )


def build_stages(
    leaders: Sequence[LeaderRow],
    runs: Sequence[dict[str, Any]],
    parent_runs: Sequence[dict[str, Any]],
    evals: Sequence[dict[str, Any]],
    examples: Sequence[dict[str, Any]],
    metric_names: Sequence[str],
    split: str | None,
) -> tuple[StageRow, ...]:
    """One StageRow per leaderboard row whose runs have parents (none: no section).

    ``runs`` are this experiment's; ``parent_runs`` the runs named as parents (any
    experiment); ``evals`` aggregate metrics and ``examples`` per-example scores
    (run_id, metric, example_id, value) of both sides.
    """
    by_id = {r["run_id"]: r for r in runs}
    known = {r["run_id"]: r for r in parent_runs}
    per_run: dict[str, dict[str, float | None]] = defaultdict(dict)
    for e in evals:
        per_run[e["run_id"]][e["metric"]] = e["value"]
    standins = standins_of(runs)
    rows = []
    for row in leaders:
        if row.fixed and standins:  # the base row is the parent's own score, not a stage
            continue
        children = [by_id[rid] for rid in row.run_ids if rid in by_id and _parent_id(by_id[rid])]
        if children:
            rows.append(
                _stage_row(row, children, known, per_run, examples, metric_names, split, standins)
            )
    settled = iter(_settle([g for r in rows for g in r.gains]))  # Holm across the section
    return tuple(replace(r, gains=tuple(next(settled) for _ in r.gains)) for r in rows)


def load_stages(
    con: DuckDBPyConnection, view: Any, runs: list[dict[str, Any]], split: str | None
) -> tuple[StageRow, ...]:
    """Read the parents of ``view``'s leaderboard runs and build the Stages rows."""
    leader_ids = {rid for row in view.leaderboard for rid in row.run_ids}
    children = [r for r in runs if r["run_id"] in leader_ids and _parent_id(r)]
    if not children:
        return ()
    parent_ids = sorted({str(_parent_id(r)) for r in children})
    standin_ids = {r["run_id"] for r in standins_of(runs).values()}
    ids = sorted({r["run_id"] for r in children} | set(parent_ids) | standin_ids)
    return build_stages(
        view.leaderboard,
        runs,
        queries.runs_by_id(con, parent_ids),
        queries.eval_metrics_by_id(con, ids),
        queries.example_scores_by_id(con, ids, split),
        view.metric_names,
        split,
    )
