"""`ftsweep schema`: the JSON Schema every shipped experiment file must satisfy."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from ftsweep.cli import main
from ftsweep.config.jsonschema import experiment_schema, field_comments
from ftsweep.config.schema import TrainingBlock

ROOT = Path(__file__).resolve().parents[1]


def _is_experiment(path: Path) -> bool:
    """An experiment file (not an accelerate config or other YAML kept beside them)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return isinstance(doc, dict) and "experiment" in doc


SHIPPED = sorted(
    p
    for pattern in ("experiments/**/*.yaml", "examples/**/*.yaml", "benchmarks/**/*.yaml")
    for p in ROOT.glob(pattern)
    if _is_experiment(p)
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = experiment_schema()
    jsonschema.Draft202012Validator.check_schema(schema)  # a well-formed schema
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_experiment_satisfies_the_schema(path, validator):
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []


def test_the_shipped_experiments_are_found():
    assert len([p for p in SHIPPED if p.parent.name == "experiments"]) >= 7


def test_the_schema_catches_what_an_editor_should_flag(validator):
    doc = yaml.safe_load((ROOT / "experiments" / "math.yaml").read_text())
    assert validator.is_valid(doc)
    bad = [
        ("training", {"lr": 1e-3, "epoch": 2}),  # unknown key
        ("training", {"eval_strategy": "epochs"}),  # not a choice
        ("eval", {"generation": {"num_samples": 0}}),  # below its minimum
        ("eval", {"answer_extraction": "gsm9k"}),
        ("matrix", {"method": ["lora", "no_such_method"]}),
        ("matrix", {"method": [{"r": [4, 8]}]}),  # an entry without its name
    ]
    for block, value in bad:
        assert not validator.is_valid({**doc, block: value}), (block, value)
    assert not validator.is_valid({k: v for k, v in doc.items() if k != "model"})


def test_comments_become_descriptions():
    comments = field_comments(TrainingBlock)
    assert comments["checkpoint_every"].startswith("Checkpoints let a killed run resume")
    schema = experiment_schema()
    props = schema["$defs"]["TrainingBlock"]["properties"]
    assert props["checkpoint_every"]["description"] == comments["checkpoint_every"]
    assert props["batch_size"]["description"] == "per device"  # Field(description=) kept
    assert "lora" in json.dumps(schema["properties"]["matrix"])


def test_schema_command_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(experiment_schema()))
    assert printed["$schema"].endswith("2020-12/schema")
