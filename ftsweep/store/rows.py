"""The rows a run contributes from its small JSON files: ``runs`` and ``evals``.

Built in Python, one run at a time (a run's spec, result, failure, launch record and
provenance are a few kB), and handed to DuckDB as one Arrow table per ingest batch.
The logs (metrics.jsonl, evals.jsonl) are bulk-loaded by DuckDB itself (``bulk.py``).
NaN and infinities become NULL, also inside JSON columns.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from ftsweep.rundir import LAUNCH, PROVENANCE, RunDir, finite_or_none, read_json
from ftsweep.store.stage import parent_run_id, run_objective

_TS = pa.timestamp("us")
SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema(
        [
            ("run_id", pa.string()),
            ("experiment", pa.string()),
            ("method", pa.string()),
            ("status", pa.string()),
            ("seed", pa.int32()),
            ("params", pa.string()),
            ("config", pa.string()),
            ("fingerprints", pa.string()),
            ("run_dir", pa.string()),
            ("created_at", _TS),
            ("started_at", _TS),
            ("finished_at", _TS),
            ("failure_cause", pa.string()),
            ("failure_log_tail", pa.string()),
            ("trainable_params", pa.int64()),
            ("total_params", pa.int64()),
            ("trainable_pct", pa.float64()),
            ("peak_memory_mb", pa.float64()),
            ("wall_time_s", pa.float64()),
            ("train_time_s", pa.float64()),
            ("tokens_seen", pa.int64()),
            ("tokens_per_s", pa.float64()),
            ("steps", pa.int32()),
            ("artifact_size_mb", pa.float64()),
            ("final_eval", pa.string()),
            ("best_eval", pa.string()),
            ("best_step", pa.int32()),
            ("ingested_at", _TS),
            ("provenance", pa.string()),
            ("process_wall_s", pa.float64()),
            ("setup_time_s", pa.float64()),
            ("attempts", pa.int32()),
            ("data_counts", pa.string()),
            ("objective", pa.string()),
            ("parent_run_id", pa.string()),
        ]
    ),
    "evals": pa.schema(
        [
            ("run_id", pa.string()),
            ("split", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    ),
}

_RESULT_FLOATS = (
    "trainable_pct",
    "peak_memory_mb",
    "wall_time_s",
    "train_time_s",
    "setup_time_s",
    "tokens_per_s",
    "artifact_size_mb",
)
_RESULT_INTS = ("trainable_params", "total_params", "tokens_seen", "steps", "best_step", "attempts")


def clean_json(value: Any) -> str | None:
    """Dump to JSON with non-finite floats as null (DuckDB's JSON rejects NaN)."""
    if value is None:
        return None
    return json.dumps(_finite(value), sort_keys=True)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _ts(epoch: Any) -> datetime | None:
    seconds = finite_or_none(epoch) if isinstance(epoch, int | float) else None
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def run_row(rd: RunDir, spec: dict[str, Any], run_id: str, now: datetime) -> dict[str, Any]:
    result = rd.result() or {}
    failure = rd.failure() or {}
    prov_path = rd.file(PROVENANCE)
    launch = read_json(rd.file(LAUNCH)) if rd.file(LAUNCH).exists() else {}
    row: dict[str, Any] = {
        "run_id": run_id,
        "experiment": spec.get("experiment"),
        "method": spec.get("method"),
        "status": str(rd.read_state()),
        "seed": _int(spec.get("seed")),
        "params": clean_json(spec.get("params") or {}),
        "config": clean_json(spec.get("config") or {}),
        "fingerprints": clean_json(spec.get("fingerprints") or {}),
        "run_dir": str(rd.path.resolve()),
        "created_at": _ts(spec.get("created_at")),
        "started_at": _ts(result.get("started_at")),
        "finished_at": _ts(result.get("finished_at") or failure.get("time")),
        "failure_cause": failure.get("cause"),
        "failure_log_tail": failure.get("log_tail"),
        "final_eval": clean_json(result.get("final_eval")),
        "best_eval": clean_json(result.get("best_eval")),
        "ingested_at": now,
        "provenance": clean_json(read_json(prov_path)) if prov_path.exists() else None,
        "process_wall_s": finite_or_none(launch.get("process_wall_s")),
        "data_counts": clean_json(result.get("data_counts")),
        "objective": run_objective(spec.get("config")),
        "parent_run_id": parent_run_id(spec.get("config")),
    }
    for key in _RESULT_FLOATS:
        value = result.get(key)
        row[key] = finite_or_none(value) if isinstance(value, int | float) else None
    for key in _RESULT_INTS:
        row[key] = _int(result.get(key))
    return row


def eval_rows(rd: RunDir, spec: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The final evaluation's aggregate metrics (result.json ``final_eval``)."""
    result = rd.result() or {}
    final = result.get("final_eval") or {}
    split = result.get("eval_split") or ((spec.get("config") or {}).get("eval") or {}).get("split")
    return [
        {
            "run_id": run_id,
            "split": split,
            "metric": str(name),
            "value": finite_or_none(v) if isinstance(v, int | float) else None,
        }
        for name, v in sorted(final.items())
    ]
