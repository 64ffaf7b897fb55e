"""What a resolved run config says about its stage: the objective it optimised and the
run it started from. One owner for both facts: ingest (``rows.py``), migration 0008
(the same rules in SQL) and the report (``report/stages.py``) all read them this way.

Kept free of heavy imports: the report imports it.
"""

from __future__ import annotations

from typing import Any

DEFAULT_OBJECTIVE = "sft"


def run_objective(config: Any) -> str:
    """What a resolved run config optimises (training.objective); "sft" when it does not
    say, as for every run from before the objective existed (migration 0008 agrees)."""
    training = config.get("training") if isinstance(config, dict) else None
    objective = training.get("objective") if isinstance(training, dict) else None
    return objective if isinstance(objective, str) and objective else DEFAULT_OBJECTIVE


def parent_run_id(config: Any) -> str | None:
    """The run a resolved run config starts from (model.from_run.run_id), else None."""
    model = config.get("model") if isinstance(config, dict) else None
    from_run = model.get("from_run") if isinstance(model, dict) else None
    run_id = from_run.get("run_id") if isinstance(from_run, dict) else None
    return run_id if isinstance(run_id, str) and run_id else None
