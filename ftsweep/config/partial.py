"""Checks of the blocks that are valid in a file whose schema is not: one round.

A schema error (a typo in ``training``) must not hide the data, evaluator, template and
model problems of the same file: the user would fix one round, run validate again, and
only then meet the next. So when the whole file fails the schema, each block is
validated on its own, and the deep checks that need only valid blocks run on them.
A check that needs a block with errors is skipped (its schema errors are reported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ftsweep.config.schema import (
    DataBlock,
    EvalBlock,
    ExperimentFile,
    LaunchBlock,
    ModelBlock,
    TrainingBlock,
)
from ftsweep.config.yamlpos import Positions
from ftsweep.errors import Problem


def valid_block_checks(raw: dict[str, Any], base_dir: Path, pos: Positions) -> list[Problem]:
    """Deep-check problems of the valid blocks of a file that failed the schema."""
    try:
        return _checks(raw, base_dir, pos)
    except (ValidationError, ValueError, TypeError, KeyError, AttributeError, OSError):
        # A block too broken to check further: its schema errors are what to fix first.
        return []


def _block(raw: dict[str, Any], key: str, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(raw.get(key) or {})
    except ValidationError:
        return None


def _checks(raw: dict[str, Any], base_dir: Path, pos: Positions) -> list[Problem]:
    from ftsweep.config import checks, inputs

    model: ModelBlock | None = _block(raw, "model", ModelBlock)
    data: DataBlock | None = _block(raw, "data", DataBlock)
    ev: EvalBlock | None = _block(raw, "eval", EvalBlock)
    training: TrainingBlock | None = _block(raw, "training", TrainingBlock)
    if data is not None and ev is None:
        # The split is unknown: evaluate on one the data has, so that no spurious
        # "split not set" joins the schema errors.
        split = "test" if data.test else "eval"
        stand_in = EvalBlock(split=split)
    else:
        stand_in = ev or EvalBlock()
    spec = ExperimentFile.model_construct(
        experiment="-",
        model=model or ModelBlock.model_construct(path=""),
        data=data or DataBlock.model_construct(family="instruction"),
        training=training or TrainingBlock(),
        eval=stand_in,
        launch=LaunchBlock(),
        seeds=[0],
    )
    local = checks.resolve_model_path(model.path, base_dir) if model is not None else None
    problems: list[Problem] = []
    if data is not None:
        problems += checks._data_checks(spec, base_dir, pos)
        problems += inputs.template_checks(spec, base_dir, local, pos)
    if ev is not None and data is not None:
        problems += inputs.untested_code_checks(spec, base_dir, pos)
    if ev is not None:
        problems += checks._eval_checks(spec, pos) if data is not None else _eval_only(spec, pos)
    if model is not None:
        # Files only: reading the modules imports torch, which a schema error must not
        # wait for (tests/test_validate_imports.py); the full round after the fix does.
        problems += checks._model_checks(spec, local, pos, read_modules=False)[1]
        if data is not None:  # (an invalid training block stands in with its defaults)
            config = spec.model_dump(mode="json", include={"model", "data", "training"})
            problems += inputs.model_load_checks(spec, [config], local, pos)
    return problems


def _eval_only(spec: ExperimentFile, pos: Positions) -> list[Problem]:
    """The evaluator checks that do not depend on the data family."""
    from ftsweep.config import checks

    return [
        p
        for p in checks._eval_checks(spec, pos)
        if "pass_at_1 runs unit tests" not in p.message  # needs the (invalid) data block
    ]
