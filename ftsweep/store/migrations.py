"""Named, ordered, recorded schema migrations for the store (STYLE item 10).

Contract: ``MIGRATIONS`` is append-only. A migration, once released, is never edited
or reordered; a schema change is a new entry at the end. ``migrate`` applies each
missing migration in order, each in its own transaction together with the row that
records it, so a crash leaves either both or neither. Re-running applies nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from ftsweep.errors import FtsweepError

# The tables are the public surface users write SQL against (DESIGN "The store").
_CREATE_CORE = """
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    experiment VARCHAR,
    method VARCHAR,
    status VARCHAR,
    seed INTEGER,
    params JSON,            -- the varied values only
    config JSON,            -- the fully resolved config
    fingerprints JSON,
    run_dir VARCHAR,
    created_at TIMESTAMP,   -- all timestamps are naive UTC
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    failure_cause VARCHAR,
    failure_log_tail VARCHAR,
    trainable_params BIGINT,
    total_params BIGINT,
    trainable_pct DOUBLE,
    peak_memory_mb DOUBLE,
    wall_time_s DOUBLE,
    train_time_s DOUBLE,
    tokens_seen BIGINT,
    tokens_per_s DOUBLE,
    steps INTEGER,
    artifact_size_mb DOUBLE,
    final_eval JSON,
    best_eval JSON,
    best_step INTEGER,
    ingested_at TIMESTAMP
);
CREATE TABLE metrics (
    run_id VARCHAR, step INTEGER, epoch DOUBLE, name VARCHAR, value DOUBLE, time DOUBLE
);
CREATE TABLE evals (run_id VARCHAR, split VARCHAR, metric VARCHAR, value DOUBLE);
CREATE TABLE eval_examples (
    run_id VARCHAR, split VARCHAR, example_id VARCHAR, metric VARCHAR, value DOUBLE,
    prediction VARCHAR, reference VARCHAR
);
"""

# provenance.json (versions, git commit, host, device) feeds the report's provenance
# section; the first schema had nowhere to keep it.
_ADD_PROVENANCE = "ALTER TABLE runs ADD COLUMN provenance JSON;"

# launch.json (written by the launcher) gives the wall time of the whole
# `accelerate launch` process group, so per-run overhead = process_wall_s - train_time_s.
_ADD_PROCESS_WALL = "ALTER TABLE runs ADD COLUMN process_wall_s DOUBLE;"


# Search trials (Optuna's journal is their source of truth; ftsweep.store.trials).
_CREATE_TRIALS = """
CREATE TABLE trials (
    experiment VARCHAR,
    study VARCHAR,          -- <experiment>/<method> (budget per_method) or <experiment>
    number INTEGER,         -- the trial's number in its study
    method VARCHAR,
    state VARCHAR,          -- complete, pruned, fail, running, waiting
    source VARCHAR,         -- ftsweep (asked by the search) or grid (warm start)
    params JSON,            -- as the study stores them
    value DOUBLE,           -- the first objective (NULL unless complete)
    objective_values JSON,  -- every objective, in the order of search.objectives
    intermediate JSON,      -- {step: eval_loss} reported for pruning
    last_step INTEGER,
    run_ids JSON,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    fail_reason VARCHAR
);
"""


# Incremental ingest (ftsweep.store.scan): one watermark per run directory, and a
# version that grows with every change, so a snapshot can be brought up to date with
# only the runs that changed since it was. The run-derived tables are emptied: rows
# written before watermarks existed cannot be matched to what was read, and the next
# ingest refills them from the run directories (their source of truth). Trials stay.
_CREATE_INGEST_STATE = """
CREATE TABLE _ingest_state (
    key VARCHAR PRIMARY KEY,  -- <experiment dir>/<run dir>, relative to runs/
    run_id VARCHAR,
    status VARCHAR,
    small_sig VARCHAR,        -- size:mtime:inode of spec, result, failure, launch, ...
    metrics_ident VARCHAR, metrics_size BIGINT, metrics_mtime_ns BIGINT,
    metrics_bytes BIGINT, metrics_lines BIGINT, metrics_tail VARCHAR, metrics_max_step INTEGER,
    evals_ident VARCHAR, evals_size BIGINT, evals_mtime_ns BIGINT,
    evals_bytes BIGINT, evals_lines BIGINT, evals_tail VARCHAR,
    metrics_bad BIGINT, evals_bad BIGINT,  -- unreadable log lines, as last read
    problems JSON,            -- the first of them, "file:line: why"
    version BIGINT            -- _store_meta.version when this run last changed
);
CREATE TABLE _store_meta (store_id VARCHAR, version BIGINT);
INSERT INTO _store_meta VALUES (gen_random_uuid()::VARCHAR, 0);
DELETE FROM runs; DELETE FROM metrics; DELETE FROM evals; DELETE FROM eval_examples;
"""

# A run's times sum all its attempts (result.json): setup_time_s is the one-off set-up
# (model load, tokenisation, DeepSpeed builds) kept out of train_time_s, the training
# loop alone, so tokens_per_s is the loop's speed; attempts counts the worker processes.
_ADD_SETUP_TIME = """
ALTER TABLE runs ADD COLUMN setup_time_s DOUBLE;
ALTER TABLE runs ADD COLUMN attempts INTEGER;
"""


# result.json data_counts: records kept and dropped per split, and for a training
# mixture how many records of each source the run saw ("source:<name>").
_ADD_DATA_COUNTS = "ALTER TABLE runs ADD COLUMN data_counts JSON;"


# Stages (issue 11): what a run optimised (training.objective; runs from before the
# objective existed were sft) and the run it started from (model.from_run.run_id; NULL
# for a run that started from model.path). Rows already in the store are filled from
# their config JSON, so an old store gains the columns without a re-ingest.
_ADD_STAGES = """
ALTER TABLE runs ADD COLUMN objective VARCHAR;
ALTER TABLE runs ADD COLUMN parent_run_id VARCHAR;
UPDATE runs SET
    objective = coalesce(nullif(json_extract_string(config, '$.training.objective'), ''), 'sft'),
    parent_run_id = nullif(json_extract_string(config, '$.model.from_run.run_id'), '');
"""


class StoreError(FtsweepError):
    """The store cannot be used as it is (written by a newer ftsweep, locked, ...)."""


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


def _sql(statements: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def run(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(statements)

    return run


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_core_tables", _sql(_CREATE_CORE)),
    Migration("0002_runs_provenance", _sql(_ADD_PROVENANCE)),
    Migration("0003_runs_process_wall", _sql(_ADD_PROCESS_WALL)),
    Migration("0004_trials", _sql(_CREATE_TRIALS)),
    Migration("0005_ingest_state", _sql(_CREATE_INGEST_STATE)),
    Migration("0006_runs_setup_time_attempts", _sql(_ADD_SETUP_TIME)),
    Migration("0007_runs_data_counts", _sql(_ADD_DATA_COUNTS)),
    Migration("0008_runs_objective_parent", _sql(_ADD_STAGES)),
)


def applied_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the migrations recorded in this database, in the order applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
    )
    rows = con.execute("SELECT name FROM migrations ORDER BY applied_at, name").fetchall()
    return [r[0] for r in rows]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    done = set(applied_migrations(con))
    unknown = done - {m.name for m in MIGRATIONS}
    if unknown:
        # A store written by a newer ftsweep: refuse rather than guess at its schema.
        raise StoreError(
            f"store has migrations this ftsweep does not know: {sorted(unknown)}; upgrade ftsweep"
        )
    applied: list[str] = []
    for migration in MIGRATIONS:
        if migration.name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            migration.apply(con)
            # naive UTC, like every timestamp in the store
            now = datetime.now(UTC).replace(tzinfo=None)
            con.execute("INSERT INTO migrations VALUES (?, ?)", [migration.name, now])
            con.execute("COMMIT")
        except BaseException:
            try:  # after an I/O error DuckDB may have ended it: keep the real error
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        applied.append(migration.name)
    return applied
