"""Schema errors are refused before torch, transformers or peft are imported (issue 8,
item 19: rejecting a misspelt key took ~7 s and 400 MB, all of it importing them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

HEAVY = {"torch", "transformers", "peft", "accelerate", "safetensors", "optuna", "duckdb"}

BAD_FILES = {
    "unknown top-level key": """\
        experiment: x
        model: {path: /nowhere}
        data: {train: train.jsonl}
        trainig: {lr: 1.0e-3}
        matrix: {method: [lora, adapter, progressive, adalora]}
        """,
    "bad values and an unknown method parameter": """\
        experiment: x
        model: {path: /nowhere}
        data: {train: train.jsonl, max_length: -1}
        matrix: {method: [{name: lora, rr: [4, 8]}, freeze]}
        """,
    "a matrix over the run limit": """\
        experiment: x
        model: {path: /nowhere}
        data: {train: train.jsonl}
        matrix: {method: [{name: lora, r: [1, 2, 3], alpha: [1, 2, 3]}]}
        launch: {max_runs: 5}
        """,
}


def _imported_top_level(stderr: str) -> set[str]:
    """Top-level package names from ``python -X importtime`` lines ('... | name')."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_validate_refuses_a_schema_error_without_importing_torch(tmp_path, name):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(BAD_FILES[name]))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ftsweep.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "problem" in done.stderr and str(path) in " ".join(done.stderr.split())
    imported = _imported_top_level(done.stderr)
    assert "ftsweep" in imported  # the probe works: it sees our own imports
    assert not imported & HEAVY, f"imported {sorted(imported & HEAVY)}"
