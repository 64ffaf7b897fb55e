"""Every SQL statement the report runs. Templates and view-models never see SQL.

Each function takes a read-only connection and returns plain Python rows (dicts),
with JSON columns already decoded.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

_JSON_COLS = ("params", "config", "final_eval", "fingerprints", "provenance")


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cursor.description or []]
    return [dict(zip(cols, row, strict=True)) for row in cursor.fetchall()]


def experiments(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT experiment FROM runs WHERE experiment IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def runs(con: duckdb.DuckDBPyConnection, experiment: str) -> list[dict[str, Any]]:
    rows = _dicts(
        con.execute(
            """SELECT run_id, method, status, seed, params, config, final_eval, fingerprints,
                  provenance, trainable_params, total_params, trainable_pct, peak_memory_mb,
                  wall_time_s, tokens_per_s, train_time_s, setup_time_s, attempts, tokens_seen,
                  artifact_size_mb, failure_cause, failure_log_tail, objective, parent_run_id
           FROM runs WHERE experiment = ? ORDER BY method, run_id""",
            [experiment],
        )
    )
    return _decoded(rows)


def _decoded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for col in _JSON_COLS:
            if col in row:
                row[col] = json.loads(row[col]) if row[col] is not None else None
    return rows


def runs_by_id(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> list[dict[str, Any]]:
    """Runs named by id, whatever their experiment (a stage's parents usually belong to
    another one): run_id, experiment, method, objective, status, seed, params, config,
    fingerprints."""
    if not run_ids:
        return []
    return _decoded(
        _dicts(
            con.execute(
                """SELECT run_id, experiment, method, objective, status, seed, params, config,
                      fingerprints
               FROM runs WHERE list_contains(?::VARCHAR[], run_id) ORDER BY run_id""",
                [run_ids],
            )
        )
    )


def eval_metrics_by_id(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> list[dict[str, Any]]:
    """Aggregate final-eval metrics of the named runs: run_id, metric, value."""
    if not run_ids:
        return []
    return _dicts(
        con.execute(
            """SELECT run_id, metric, value FROM evals
           WHERE list_contains(?::VARCHAR[], run_id) ORDER BY 1, 2""",
            [run_ids],
        )
    )


def example_scores_by_id(
    con: duckdb.DuckDBPyConnection, run_ids: list[str], split: str | None
) -> list[dict[str, Any]]:
    """Per-example scores of the named runs, every metric (and the split, if known):
    run_id, metric, example_id, value."""
    if not run_ids:
        return []
    return _dicts(
        con.execute(
            """SELECT run_id, metric, example_id, value FROM eval_examples
           WHERE list_contains(?::VARCHAR[], run_id) AND (? IS NULL OR split = ?)
             AND value IS NOT NULL
           ORDER BY 1, 2, 3""",
            [run_ids, split, split],
        )
    )


def eval_metrics(con: duckdb.DuckDBPyConnection, experiment: str) -> list[dict[str, Any]]:
    """Aggregate final-eval metrics of complete runs: run_id, metric, value."""
    return _dicts(
        con.execute(
            """SELECT e.run_id, e.metric, e.value FROM evals e JOIN runs r USING (run_id)
           WHERE r.experiment = ? AND r.status = 'complete' ORDER BY 1, 2""",
            [experiment],
        )
    )


def curves(
    con: duckdb.DuckDBPyConnection, experiment: str, names: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Logged metrics named ``names``: run_id, name, step, value (ordered by step)."""
    return _dicts(
        con.execute(
            """SELECT m.run_id, m.name, m.step, m.value FROM metrics m JOIN runs r USING (run_id)
           WHERE r.experiment = ? AND list_contains(?, m.name) AND m.value IS NOT NULL
           ORDER BY m.run_id, m.name, m.step""",
            [experiment, list(names)],
        )
    )


def example_scores(
    con: duckdb.DuckDBPyConnection,
    experiment: str,
    metric: str,
    split: str | None,
    run_ids: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Per-example scores of one metric (and split, if known): run_id, example_id, value.

    ``run_ids`` (if given) keeps only those runs: the report reads the leaderboard's.
    """
    return _dicts(
        con.execute(
            """SELECT e.run_id, e.example_id, e.value FROM eval_examples e JOIN runs r USING (run_id)
           WHERE r.experiment = ? AND r.status = 'complete' AND e.metric = ?
             AND (? IS NULL OR e.split = ?) AND e.value IS NOT NULL
             AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], e.run_id))
           ORDER BY 1, 2""",
            [experiment, metric, split, split, run_ids, run_ids],
        )
    )


def example_texts(
    con: duckdb.DuckDBPyConnection,
    experiment: str,
    metric: str,
    split: str | None,
    run_ids: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Predictions and references behind one metric's per-example rows (corpus metrics)."""
    return _dicts(
        con.execute(
            """SELECT e.run_id, e.example_id, e.prediction, e.reference
           FROM eval_examples e JOIN runs r USING (run_id)
           WHERE r.experiment = ? AND r.status = 'complete' AND e.metric = ?
             AND (? IS NULL OR e.split = ?)
             AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], e.run_id))
           ORDER BY 1, 2""",
            [experiment, metric, split, split, run_ids, run_ids],
        )
    )


RUN_TABLE_COLUMNS = (
    "run_id, experiment, method, status, seed, params, trainable_params, total_params, "
    "trainable_pct, peak_memory_mb, wall_time_s, train_time_s, tokens_seen, tokens_per_s, "
    "steps, artifact_size_mb, failure_cause, objective, parent_run_id"
)


def run_table(con: duckdb.DuckDBPyConnection, experiment: str) -> list[dict[str, Any]]:
    """Every run of an experiment with its result columns and final-eval metrics.

    One row per run; ``params`` decoded; ``metrics`` maps metric name → value (from
    ``evals``, complete runs only, as the report reads them).
    """
    rows = _dicts(
        con.execute(
            f"SELECT {RUN_TABLE_COLUMNS} FROM runs WHERE experiment = ? ORDER BY method, run_id",
            [experiment],
        )
    )
    metrics: dict[str, dict[str, float | None]] = {r["run_id"]: {} for r in rows}
    for e in eval_metrics(con, experiment):
        metrics.setdefault(e["run_id"], {})[e["metric"]] = e["value"]
    for row in rows:
        row["params"] = json.loads(row["params"]) if row["params"] is not None else {}
        row["metrics"] = metrics.get(row["run_id"], {})
    return rows


MAX_CURVE_POINTS = 400  # per series: more than a 700-pixel-wide plot can show


def curve_means(
    con: duckdb.DuckDBPyConnection,
    owners: dict[str, str],
    names: tuple[str, ...],
    max_points: int = MAX_CURVE_POINTS,
) -> list[dict[str, Any]]:
    """Logged metrics averaged over each series' runs, downsampled in DuckDB.

    ``owners`` maps run_id → series label (a leaderboard row: its seeds). Returns label,
    name, step, value (mean over the series' runs at that step), low and high (the
    lowest and highest run at that step: the seed band), n. A series longer than
    ``max_points`` steps is cut into that many consecutive bins of steps; each bin gives
    its last step and the mean of its values, so a 2,000-step curve of a 1,000-run report
    costs 400 points, not 2 million Python rows. (Series are grouped by a number, not
    their label, and no spread beyond the band is computed: this is most of a large
    report's SQL time.)
    """
    if not owners:
        return []
    labels = list(dict.fromkeys(owners.values()))
    index = {label: i for i, label in enumerate(labels)}
    rows = _dicts(
        con.execute(
            """WITH owners AS (
                 SELECT unnest(?::VARCHAR[]) AS run_id, unnest(?::INTEGER[]) AS series),
               per_step AS (
                 SELECT o.series, m.name, m.step, avg(m.value) AS value,
                        min(m.value) AS low, max(m.value) AS high, count(*) AS n
                 FROM metrics m JOIN owners o USING (run_id)
                 WHERE list_contains(?, m.name) AND m.value IS NOT NULL
                 GROUP BY o.series, m.name, m.step),
               ranked AS (
                 SELECT *, row_number() OVER w - 1 AS i, count(*) OVER w AS total
                 FROM per_step
                 WINDOW w AS (PARTITION BY series, name ORDER BY step
                              ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING))
             SELECT series, name, max(step) AS step, avg(value) AS value,
                    avg(low) AS low, avg(high) AS high, min(n) AS n
             FROM ranked
             GROUP BY series, name, i * ? // total
             ORDER BY series, name, step""",
            [list(owners), [index[label] for label in owners.values()], list(names), max_points],
        )
    )
    for row in rows:
        row["label"] = labels[row.pop("series")]
    rows.sort(key=lambda r: (r["label"], r["name"], r["step"]))  # by label, as before
    return rows
