"""The Python API, for notebooks and scripts: the CLI's commands as functions.

    import ftsweep
    exp = ftsweep.load_experiment("experiments/math.yaml")
    ftsweep.plan(exp)                 # DataFrame: run_id, method, params, seed, state, action
    ftsweep.launch(exp)               # trains what is missing; returns the LaunchSummary
    ftsweep.runs(experiment="math")   # DataFrame: one row per run, one column per metric

Each function takes a workspace (a path, default ``.ftsweep`` as in the CLI) and keeps
the CLI's guarantees: ``launch`` holds the workspace lock and is the store's only
writer; ``runs`` and ``query`` read the published snapshot read-only, so they work while
a sweep runs in another process. Bad input raises ``ftsweep.errors.ConfigError``, whose
message lists every problem with file:line, as ``ftsweep validate`` prints it.

pandas is imported only when a DataFrame is built, torch only when training starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ftsweep.config.load import Experiment
    from ftsweep.launch.launcher import LaunchSummary

DEFAULT_WORKSPACE = ".ftsweep"

# The runs table's columns that runs() returns (the store has more: `query` reads all).
RUN_COLUMNS = (
    "run_id",
    "experiment",
    "method",
    "status",
    "seed",
    "params",
    "steps",
    "wall_time_s",
    "train_time_s",
    "peak_memory_mb",
    "trainable_params",
    "trainable_pct",
    "failure_cause",
    "created_at",
    "finished_at",
)


def _workspace(workspace: str | Path) -> Any:
    from ftsweep.workspace import Workspace

    return Workspace(Path(workspace))


def load_experiment(path: str | Path, *, deep: bool = True) -> Experiment:
    """Parse, validate and expand an experiment file (``ftsweep validate``).

    ``deep=False`` skips the checks that import torch (model, data records, hardware),
    as ``ftsweep plan`` does. Raises ConfigError listing every problem.
    """
    from ftsweep.config.load import load_experiment as load

    return load(Path(path), deep=deep)


def _experiment(experiment: Experiment | str | Path, deep: bool) -> Experiment:
    if isinstance(experiment, (str, Path)):
        return load_experiment(experiment, deep=deep)
    return experiment


def plan(
    experiment: Experiment | str | Path,
    workspace: str | Path = DEFAULT_WORKSPACE,
    *,
    retry_failed: bool = False,
) -> pd.DataFrame:
    """Every run and what launch would do with it (``ftsweep plan``); trains nothing."""
    import pandas as pd

    from ftsweep.plan import plan as make_plan

    items = make_plan(
        _experiment(experiment, deep=False), _workspace(workspace), retry_failed=retry_failed
    )
    rows = [
        {
            "run_id": i.run.run_id,
            "method": i.run.method,
            "params": i.run.params,
            "seed": i.run.seed,
            "state": i.state,
            "action": str(i.action),
        }
        for i in items
    ]
    return pd.DataFrame(rows, columns=["run_id", "method", "params", "seed", "state", "action"])


def launch(
    experiment: Experiment | str | Path,
    workspace: str | Path = DEFAULT_WORKSPACE,
    *,
    retry_failed: bool = False,
    executor: str | None = None,
    console: Any = None,
) -> LaunchSummary:
    """Train every missing run (``ftsweep launch``); a second call resumes.

    Returns the summary (``.complete``, ``.failed``, ``.exit_code``, ...). Progress goes
    to ``console`` (a rich Console), by default standard error.
    """
    from ftsweep.launch.launcher import launch as run_launch

    return run_launch(
        _experiment(experiment, deep=True),
        _workspace(workspace),
        retry_failed=retry_failed,
        executor_name=executor,
        console=console,
    )


def query(sql: str, workspace: str | Path = DEFAULT_WORKSPACE) -> pd.DataFrame:
    """Read-only SQL over the store (``ftsweep query``), as a DataFrame."""
    import pandas as pd

    from ftsweep.store.query import run_query

    columns, rows = run_query(_workspace(workspace), sql)
    return pd.DataFrame.from_records(rows, columns=columns)


def runs(
    workspace: str | Path = DEFAULT_WORKSPACE,
    *,
    experiment: str | None = None,
    status: str | None = None,
) -> pd.DataFrame:
    """One row per run: the runs table's main columns, ``params`` as a dict, then one
    column per final-eval metric (exact_match, pass@1, eval_loss, ...; NaN where a run
    has none). Filtered by experiment and status when given; ordered by experiment,
    method and run id."""
    import pandas as pd

    from ftsweep.store.store import open_snapshot

    con, _ = open_snapshot(_workspace(workspace))
    try:
        where = "where ($1 is null or experiment = $1) and ($2 is null or status = $2)"
        table = con.execute(
            f"select {', '.join(RUN_COLUMNS)} from runs {where} "
            "order by experiment, method, run_id",
            [experiment, status],
        ).df()
        evals = con.execute(
            f"select run_id, metric, value from evals where run_id in "
            f"(select run_id from runs {where})",
            [experiment, status],
        ).df()
    finally:
        con.close()
    table["params"] = [json.loads(p) if isinstance(p, str) else p for p in table["params"]]
    if evals.empty:
        return table
    wide = evals.pivot_table(index="run_id", columns="metric", values="value", aggfunc="first")
    wide.columns = [str(c) for c in wide.columns]
    wide = wide[[c for c in wide.columns if c not in RUN_COLUMNS]]  # never shadow a run column
    return pd.merge(table, wide, how="left", left_on="run_id", right_index=True)
