"""What the search sections read: the store's ``trials`` table and the studies' journal.

The trials table has every trial's numbers; the journal (Optuna's own storage, the
trials' source of truth) adds what the table does not keep: each study's objectives and
directions, the distributions of its parameters, and the study object that Optuna's
importance evaluator needs. The journal is only read (Optuna reads it without a lock,
so this is safe while a sweep appends to it) and never created: a missing or unreadable
journal leaves ``StudyFacts`` empty, and the view says what cannot be shown and why.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ftsweep.report.queries import _dicts

_TRIAL_JSON = ("params", "objective_values", "intermediate", "run_ids")
MIN_IMPORTANCE_TRIALS = 2  # PED-ANOVA compares the best trials with the rest


def trials(con: duckdb.DuckDBPyConnection, experiment: str) -> list[dict[str, Any]]:
    """Every trial of an experiment, JSON columns decoded, by study then number."""
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    if "trials" not in tables:  # a store from before migration 0004 has no searches
        return []
    rows = _dicts(
        con.execute(
            """SELECT study, number, method, state, source, params, value, objective_values,
                  intermediate, last_step, run_ids, started_at, finished_at, fail_reason
           FROM trials WHERE experiment = ? ORDER BY study, number""",
            [experiment],
        )
    )
    for row in rows:
        for col in _TRIAL_JSON:
            row[col] = json.loads(row[col]) if row[col] is not None else None
    return rows


@dataclass(frozen=True)
class Distribution:
    """One parameter's search range, as a plot axis needs it."""

    kind: str  # "float", "int" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()  # categorical choices, as JSON text


@dataclass(frozen=True)
class Importance:
    """PED-ANOVA importances of one study, or why there are none."""

    values: dict[str, float]  # param → importance (unnormalised), most important first
    n_trials: int  # complete trials it was computed from
    reason: str | None = None  # set when ``values`` is empty


@dataclass(frozen=True)
class StudyInfo:
    name: str
    method: str | None  # None for a shared study
    directions: tuple[str, ...]  # "maximize" / "minimize", one per objective
    distributions: dict[str, Distribution]
    importance: Importance


@dataclass(frozen=True)
class StudyFacts:
    """What the journal says about an experiment's studies (empty with ``problem``)."""

    objectives: tuple[tuple[str, str], ...] = ()  # (metric, direction)
    budget: str | None = None
    studies: dict[str, StudyInfo] = field(default_factory=dict)
    problem: str | None = None


def _distribution(dist: Any) -> Distribution:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return Distribution("categorical", choices=tuple(json.dumps(c) for c in dist.choices))
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    return Distribution(kind, float(dist.low), float(dist.high), bool(dist.log))


def importance(study: Any) -> Importance:
    """PED-ANOVA importances of one study's parameters (fANOVA would need scikit-learn).

    For several objectives PED-ANOVA measures the importance of reaching the Pareto
    front. Values are not normalised: all zeros means no parameter separates the best
    trials from the rest, which a normalised 1/n each would hide.
    """
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    from optuna.trial import TrialState

    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values and all(math.isfinite(v) for v in t.values)
    ]
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return Importance(
            {},
            len(complete),
            f"{len(complete)} complete trial(s); importances need at least "
            f"{MIN_IMPORTANCE_TRIALS} to compare the best with the rest",
        )
    if not {p for t in complete for p in t.params}:
        return Importance({}, len(complete), "the study has no searched parameters")
    with warnings.catch_warnings():  # "too few trials" warnings: the reason is shown instead
        warnings.simplefilter("ignore")
        values = get_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator(), normalize=False
        )
    return Importance({k: float(v) for k, v in values.items()}, len(complete))


def study_facts(journal: Path) -> StudyFacts:
    """Objectives, budget and per-study facts from one experiment's journal file."""
    if not journal.is_file():  # checked first: Optuna's file backend creates a missing file
        return StudyFacts(problem=f"no study journal at {journal}")
    try:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(journal)))
        objectives: tuple[tuple[str, str], ...] = ()
        budget = None
        studies = {}
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            attrs = study.user_attrs
            objectives = objectives or tuple(
                (str(o["metric"]), str(o["direction"])) for o in attrs.get("objectives", [])
            )
            budget = budget or attrs.get("budget")
            dists: dict[str, Distribution] = {}
            for t in study.get_trials(deepcopy=False):
                for name, dist in t.distributions.items():
                    dists.setdefault(name, _distribution(dist))
            studies[study.study_name] = StudyInfo(
                name=study.study_name,
                method=attrs.get("method"),
                directions=tuple(d.name.lower() for d in study.directions),
                distributions=dists,
                importance=importance(study),
            )
    except Exception as exc:  # a broken journal must not stop the rest of the report
        return StudyFacts(problem=f"cannot read {journal.name}: {type(exc).__name__}: {exc}")
    return StudyFacts(objectives, budget, studies)
