"""``ftsweep report --format csv|parquet|json``: the report's tables, for notebooks.

Two tables per experiment, written beside index.html:

* ``leaderboard.<ext>`` — one row per leaderboard row (a method's best config on one set
  of inputs), the same numbers the report prints: for every metric and for memory, time
  and throughput the mean over seeds, the 95% t-interval ends and n (``<name>_mean``,
  ``<name>_low``, ``<name>_high``, ``<name>_n``), the primary metric over examples
  (``<primary>_examples_*``), and the run ids behind the row;
* ``runs.<ext>`` — one row per run: its state and result columns from the store
  (``objective`` and ``parent_run_id`` among them), one ``param.<key>`` column per
  varied value (its config) and one column per final-eval metric (empty for runs that
  did not complete);
* ``stages.<ext>`` — only when runs have parents (``model.from_run``): one row per
  stage row × metric, the child, parent and gain (over seeds and over examples) with
  their intervals, the paired test, its Holm-corrected p, the outcome and the verdict.

CSV and JSON (a list of records; missing and non-finite values as null) are plain
text; Parquet keeps the column types. All three go through pyarrow, so one column has
one type in every format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ftsweep.report.stats import Stat

TABLE_FORMATS = ("csv", "parquet", "json")
DOCUMENT_FORMATS = ("html", "md")
FORMATS = DOCUMENT_FORMATS + TABLE_FORMATS
_LEADER_STATS = ("peak_memory_mb", "wall_time_s", "tokens_per_s", "trainable_params")


def parse_formats(values: Iterable[str] | None) -> tuple[str, ...]:
    """``--format`` values (repeated and/or comma-separated) → formats, in FORMATS order.

    None or nothing given → html and md, the default. An unknown name raises ValueError
    naming it and the valid ones.
    """
    asked = [f.strip().lower() for v in (values or ()) for f in v.split(",") if f.strip()]
    if not asked:
        return DOCUMENT_FORMATS
    unknown = sorted({f for f in asked if f not in FORMATS})
    if unknown:
        raise ValueError(
            f"unknown report format {', '.join(repr(u) for u in unknown)}; "
            f"valid: {', '.join(FORMATS)} (repeat --format or separate with commas)"
        )
    return tuple(f for f in FORMATS if f in asked)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _stat_columns(prefix: str, stat: Stat, out: dict[str, Any]) -> None:
    out[f"{prefix}_mean"] = _clean(stat.mean)
    out[f"{prefix}_low"] = _clean(stat.low)
    out[f"{prefix}_high"] = _clean(stat.high)
    out[f"{prefix}_n"] = stat.n


def leaderboard_records(view: Any) -> list[dict[str, Any]]:
    """The leaderboard as flat records (``view`` is a ReportView)."""
    records = []
    for row in view.leaderboard:
        rec: dict[str, Any] = {
            "rank": row.rank,
            "method": row.method,
            "label": row.label,
            "objective": row.objective,
            "config": row.config,
            "inputs": row.inputs,
        }
        for metric in view.metric_names:
            _stat_columns(metric, row.metrics[metric], rec)
        _stat_columns(f"{view.primary_metric}_examples", row.primary_examples, rec)
        for name in _LEADER_STATS:
            _stat_columns(name, getattr(row, name), rec)
        rec["run_ids"] = ",".join(row.run_ids)
        records.append(rec)
    return records


def stage_records(view: Any) -> list[dict[str, Any]]:
    """The Stages section as flat records: one per stage row × metric (report/stages.py)."""
    records = []
    for row in view.stages:
        for g in row.gains:
            rec: dict[str, Any] = {
                "label": row.label,
                "objective": row.objective,
                "method": row.method,
                "config": row.config,
                "run_ids": ",".join(row.run_ids),
                "parent_run_ids": ",".join(p.run_id for p in row.parents),
                "parent_experiments": ",".join(sorted({p.experiment or "" for p in row.parents})),
                "metric": g.metric,
            }
            for name in ("child", "parent", "gain", "gain_examples"):
                _stat_columns(name, getattr(g, name), rec)
            rec["test"] = g.pair.test if g.pair is not None else None
            rec["p_value"] = _clean(g.pair.p_value) if g.pair is not None else None
            rec["p_holm"] = _clean(g.pair.p_holm) if g.pair is not None else None
            rec["outcome"] = g.outcome
            rec["verdict"] = g.verdict
            records.append(rec)
    return records


def _param_value(values: Sequence[Any]) -> list[Any]:
    """A param column: numbers stay numbers; anything else (or a mix) becomes JSON text."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return list(values)
    if all(isinstance(v, str) for v in present):
        return list(values)
    return [None if v is None else json.dumps(v, sort_keys=True) for v in values]


def run_records(rows: list[dict[str, Any]], metric_names: Sequence[str]) -> list[dict[str, Any]]:
    """``queries.run_table`` rows as flat records: params and metrics become columns."""
    keys = sorted({k for r in rows for k in r["params"] if k != "seed"})
    params = {k: _param_value([r["params"].get(k) for r in rows]) for k in keys}
    names = list(metric_names) + sorted({m for r in rows for m in r["metrics"]} - set(metric_names))
    records = []
    for i, row in enumerate(rows):
        rec = {k: _clean(v) for k, v in row.items() if k not in ("params", "metrics")}
        rec.update({f"param.{k}": params[k][i] for k in keys})
        rec.update({m: _clean(row["metrics"].get(m)) for m in names})
        records.append(rec)
    return records


def write_tables(
    tables: dict[str, list[dict[str, Any]]], dest: Path, formats: Sequence[str]
) -> list[Path]:
    """Write each table in each of ``formats`` (csv, parquet, json) under ``dest``."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    written = []
    for name, records in tables.items():
        table = pa.Table.from_pylist(records)
        for fmt in formats:
            path = dest / f"{name}.{fmt}"
            tmp = path.with_name(f".{path.name}.tmp")
            if fmt == "csv":
                pa_csv.write_csv(table, tmp)
            elif fmt == "parquet":
                pq.write_table(table, tmp)
            elif fmt == "json":
                text = json.dumps(table.to_pylist(), ensure_ascii=False, indent=1)
                tmp.write_text(text + "\n", encoding="utf-8")
            else:
                raise ValueError(f"not a table format: {fmt!r}")
            tmp.replace(path)  # a reader never sees half a file
            written.append(path)
    return written
