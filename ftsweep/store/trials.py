"""Search trials in the store: rows from Optuna studies (the journal is their truth).

``replace_trials`` swaps one experiment's rows in one transaction, from an Arrow table;
``trial_rows`` turns studies into those rows, from the launcher's open studies or, on a
rebuild, from the journal file alone (``journal_trial_rows``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

_TS = pa.timestamp("us")
SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("study", pa.string()),
        ("number", pa.int32()),
        ("method", pa.string()),
        ("state", pa.string()),
        ("source", pa.string()),
        ("params", pa.string()),
        ("value", pa.float64()),
        ("objective_values", pa.string()),
        ("intermediate", pa.string()),
        ("last_step", pa.int32()),
        ("run_ids", pa.string()),
        ("started_at", _TS),
        ("finished_at", _TS),
        ("fail_reason", pa.string()),
    ]
)


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def trial_rows(experiment: str, studies: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per trial of these optuna studies (a shared study given twice counts once)."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for study in studies:
        sign = float(study.user_attrs.get("intermediate_sign", 1.0))
        for t in study.get_trials(deepcopy=False):
            if (study.study_name, t.number) in seen:
                continue
            seen.add((study.study_name, t.number))
            # Optuna gives a pruned trial its last intermediate value (the signed eval
            # loss); only a complete trial has objective values.
            complete = t.state.name == "COMPLETE"
            values = [_finite(v) for v in t.values] if t.values and complete else None
            rows.append(
                {
                    "experiment": experiment,
                    "study": study.study_name,
                    "number": t.number,
                    "method": t.user_attrs.get("method") or t.params.get("method"),
                    "state": t.state.name.lower(),
                    "source": t.user_attrs.get("source", "ftsweep"),
                    "params": json.dumps(t.params, sort_keys=True),
                    "value": values[0] if values else None,
                    "objective_values": json.dumps(values) if values else None,
                    "intermediate": json.dumps(
                        {
                            str(k): _finite(sign * v)
                            for k, v in sorted(t.intermediate_values.items())
                        }
                    ),
                    "last_step": t.last_step,
                    "run_ids": json.dumps(t.user_attrs.get("run_ids", [])),
                    "started_at": t.datetime_start,
                    "finished_at": t.datetime_complete,
                    "fail_reason": t.user_attrs.get("fail_reason"),
                }
            )
    return rows


def replace_trials(
    con: duckdb.DuckDBPyConnection, experiment: str, rows: list[dict[str, Any]]
) -> int:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    con.register("_trial_rows", table)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM trials WHERE experiment = ?", [experiment])
        con.execute("INSERT INTO trials BY NAME SELECT * FROM _trial_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_trial_rows")
    return table.num_rows


def journal_trial_rows(journal: Path) -> dict[str, list[dict[str, Any]]]:
    """Rows of every study in one experiment's journal file, by experiment name."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    out: dict[str, list[dict[str, Any]]] = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        experiment = str(study.user_attrs.get("experiment") or summary.study_name.split("/")[0])
        out.setdefault(experiment, []).extend(trial_rows(experiment, [study]))
    return out


def ingest_journals(con: duckdb.DuckDBPyConnection, studies_dir: Path) -> int:
    """Replace the trials of every experiment that has a journal in ``studies_dir``."""
    n = 0
    for journal in sorted(studies_dir.glob("*.journal")) if studies_dir.is_dir() else []:
        for experiment, rows in journal_trial_rows(journal).items():
            n += replace_trials(con, experiment, rows)
    return n
