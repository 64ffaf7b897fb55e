"""Shared fixtures: the shipped tiny model and data, and small experiment files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# FTSWEEP_TEST_MODEL lets a developer point the suite at another local model directory.
MODEL = Path(os.environ.get("FTSWEEP_TEST_MODEL", REPO / "models" / "tiny-base"))
DATA = REPO / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def experiment_yaml(
    name: str = "t",
    *,
    matrix: str | None = None,
    extra: str = "",
    seeds: str = "[0]",
    max_steps: int = 10,
    launch: str = "{}",
) -> str:
    """A small instruction experiment on the shipped model and data (absolute paths)."""
    matrix = matrix or textwrap.dedent("""\
        matrix:
          method:
            - base
            - {name: lora, r: [4], training.lr: [1e-2]}
        """)
    return (
        textwrap.dedent(f"""\
        experiment: {name}
        model:
          path: {MODEL}
        data:
          family: instruction
          train: {DATA}/instruction/train.jsonl
          eval: {DATA}/instruction/eval.jsonl
          test: {DATA}/instruction/test.jsonl
          max_length: 64
          max_train_samples: 128
        training:
          lr: 1.0e-3
          max_steps: {max_steps}
          batch_size: 8
          logging_every: 2
        eval:
          split: test
          evaluators: [loss, exact_match]
          primary_metric: exact_match
          max_new_tokens: 8
          max_examples: 16
        seeds: {seeds}
        launch: {launch}
        """)
        + matrix
        + extra
    )


@pytest.fixture
def write_exp(tmp_path: Path):
    def write(text: str, name: str = "exp.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return p

    return write


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real single-node Slurm cluster for this test session (tests/slurm_cluster.py).

    Skipped with the reason where Slurm cannot run; CI installs it (`make
    slurm-test-deps`), so there these tests run.
    """
    import slurm_cluster as sc

    why = sc.missing()
    if why:
        if os.environ.get("FTSWEEP_REQUIRE_SLURM"):
            pytest.fail(f"FTSWEEP_REQUIRE_SLURM is set but {why}")
        pytest.skip(why)
    cluster = sc.start(tmp_path_factory.mktemp("slurm"))
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]
    try:
        yield cluster
    finally:
        sc.stop(cluster)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
