"""Re-evaluate a finished run from its saved artefacts, in this process.

The check that a saved result means what it says: rebuild the model from
``artifacts/`` (``export.load_trained``), evaluate it exactly as the worker did (same
split, examples and evaluators), and compare with the metrics in result.json.
Nothing is written into the run directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ftsweep.errors import FtsweepError
from ftsweep.rundir import RunDir


def reevaluate(run_dir: Path) -> dict[str, Any]:
    """{"recorded": final_eval from result.json, "now": the same metrics recomputed}."""
    import torch

    from ftsweep.export import load_trained
    from ftsweep.worker import setup
    from ftsweep.worker.evaluate import evaluate

    rd = RunDir(run_dir)
    result = rd.result()
    if result is None:
        raise FtsweepError(f"run {rd.run_id} is not complete: nothing to re-evaluate")
    spec = rd.spec()
    cfg, paths = spec["config"], spec["paths"]
    setup.configure_threads()
    model, tok = load_trained(run_dir)
    split = cfg["eval"]["split"]
    examples, _ = setup.load_split(cfg, paths, split, tok, cfg["eval"]["max_examples"])
    device = next(model.parameters()).device
    probes = _probes_before(cfg, paths)
    with tempfile.TemporaryDirectory() as scratch:  # evaluate() logs per-example rows
        outcome = evaluate(
            model, tok, examples, cfg, split, RunDir(Path(scratch)), torch.device(device), probes
        )
    return {"recorded": result["final_eval"], "now": outcome.aggregate}


def _probes_before(cfg: dict[str, Any], paths: dict[str, str]) -> Any:
    """The forgetting probe's losses on the base model as the run loaded it (None: no probe)."""
    from ftsweep import evaluators as ev
    from ftsweep.methods import get_method
    from ftsweep.worker import setup
    from ftsweep.worker.probe import ProbeSet

    if not any(ev.get_evaluator(n).reads_probe for n in cfg["eval"]["evaluators"]):
        return None
    method = get_method(cfg["method"]["name"])()
    params = method.Params.model_validate({k: v for k, v in cfg["method"].items() if k != "name"})
    base, tok = setup.load_model_and_tokenizer(
        cfg, paths["model"], method.load_kwargs(params), parent=paths.get("parent_run")
    )
    return ProbeSet.before_training(base, tok, cfg, paths)
