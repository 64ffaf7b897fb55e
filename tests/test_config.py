"""Experiment files: schema, every error at once with file:line, run ids, shipped files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ftsweep.cli import main
from ftsweep.config.load import load_experiment
from ftsweep.errors import ConfigError
from tests.conftest import DATA, REPO, experiment_yaml


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    return [p.format() for p in info.value.problems]


def test_valid_file_expands_with_seeds(write_exp):
    exp = load_experiment(write_exp(experiment_yaml(seeds="[0, 1]")))
    # the untrained base model is seed-independent (greedy decoding): it runs once
    assert [(r.method, r.seed) for r in exp.runs] == [("base", 0), ("lora", 0), ("lora", 1)]
    assert len({r.run_id for r in exp.runs}) == 3
    lora = exp.runs[1]
    assert lora.params == {"r": 4, "training.lr": 0.01}  # '1e-2' (a YAML 1.1 string) → float
    assert lora.config["method"]["alpha"] == 16  # method defaults filled in
    assert lora.config["training"]["lr"] == 0.01 and lora.config["training"]["batch_size"] == 8


def test_run_ids_are_stable_and_content_addressed(write_exp, tmp_path):
    a = [r.run_id for r in load_experiment(write_exp(experiment_yaml())).runs]
    b = [r.run_id for r in load_experiment(write_exp(experiment_yaml(), "again.yaml")).runs]
    assert a == b
    # same file, different training data content → different run ids
    data = tmp_path / "train.jsonl"
    shutil.copy(DATA / "instruction" / "train.jsonl", data)
    with open(data, "a", encoding="utf-8") as fh:
        fh.write('{"instruction": "x", "input": "", "output": "y"}\n')
    text = experiment_yaml().replace(f"{DATA}/instruction/train.jsonl", str(data))
    c = [r.run_id for r in load_experiment(write_exp(text, "c.yaml")).runs]
    assert set(a).isdisjoint(c)


def test_every_problem_is_reported_at_once_with_lines(write_exp):
    text = experiment_yaml(
        matrix="""\
matrix:
  method:
    - {name: lora, r: [0], training.lr: [1e-3]}
    - {name: lora, r: [4], target_modules: [q_proj, qq_proj]}
    - {name: prefx}
  trainng.max_steps: [5]
"""
    ).replace("batch_size: 8", "batch_size: -1")
    problems = _problems(write_exp(text))
    joined = "\n".join(problems)
    assert "training.batch_size" in joined and "greater than or equal to 1" in joined
    # one run of the method can't be resolved → reported, others still checked
    assert "did you mean 'prefix'" in joined
    assert "did you mean 'training.max_steps'" in joined
    assert all(":" in p.split(" ")[0] for p in problems)  # file:line prefix on each
    assert any("exp.yaml:" in p and "line" not in p for p in problems)


def test_method_checks_run_before_training(write_exp):
    text = experiment_yaml(
        matrix="""\
matrix:
  method:
    - {name: lora, r: [4], target_modules: [q_proj, qq_proj]}
    - {name: lora, r: [0]}
"""
    )
    joined = "\n".join(_problems(write_exp(text)))
    assert "no linear module named 'qq_proj'" in joined and "did you mean 'q_proj'" in joined
    assert "matrix.method[1].r" in joined and "greater than 0" in joined


def test_unknown_top_level_key_suggests(write_exp):
    text = experiment_yaml().replace("seeds:", "sedes:")
    joined = "\n".join(_problems(write_exp(text)))
    assert "unknown key (did you mean 'seeds'?)" in joined
    assert (
        ":"
        + str(
            text.splitlines().index(next(x for x in text.splitlines() if x.startswith("sedes"))) + 1
        )
        in joined
    )


def test_yaml_syntax_error_and_duplicate_key(write_exp):
    bad = write_exp("experiment: x\nmodel: [unclosed\n", "bad.yaml")
    (p,) = _problems(bad)
    assert "bad.yaml:" in p and "invalid YAML" in p
    dup = write_exp(experiment_yaml() + "seeds: [3]\n", "dup.yaml")
    (p,) = _problems(dup)
    assert "duplicate key 'seeds'" in p


def test_unsafe_yaml_tags_are_rejected(write_exp):
    evil = write_exp("experiment: !!python/object/apply:os.system ['echo hi']\n", "evil.yaml")
    (p,) = _problems(evil)
    assert "invalid YAML" in p


def test_missing_files_and_precision_on_cpu(write_exp):
    text = (
        experiment_yaml()
        .replace("test.jsonl", "nope.jsonl")
        .replace("logging_every: 2", "logging_every: 2\n  precision: bf16")
    )
    joined = "\n".join(_problems(write_exp(text)))
    assert "file not found" in joined and "nope.jsonl" in joined
    assert "bf16 mixed precision needs a CUDA GPU" in joined


def test_bad_data_record_named_with_file_and_line(write_exp, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\nnot json\n')
    text = experiment_yaml().replace(f"{DATA}/instruction/train.jsonl", str(data))
    joined = "\n".join(_problems(write_exp(text)))
    assert f"{data}:2: missing output" in joined
    assert f"{data}:3: invalid JSON" in joined


def test_validate_cli_exit_codes_and_writes_nothing(write_exp, tmp_path, capsys):
    ws = tmp_path / "ws"
    good = write_exp(experiment_yaml())
    assert main(["--workspace", str(ws), "validate", str(good)]) == 0
    bad = write_exp(experiment_yaml().replace("lr: 1.0e-3", "lr: -1"), "bad.yaml")
    assert main(["--workspace", str(ws), "validate", str(bad)]) == 2
    assert main(["--workspace", str(ws), "launch", str(bad)]) == 2
    assert not ws.exists()
    err = capsys.readouterr().err
    assert "training.lr" in err and "greater than 0" in err


@pytest.mark.parametrize(
    "path", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_experiment_validates(path):
    exp = load_experiment(path)
    # a stage (model.from_run) has its configurations pending until its parent is chosen
    assert exp.runs or exp.pending or (exp.search is not None and exp.search.methods)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# ftsweep launch experiments/"), "each file starts with its command"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only message")
def test_gpu_only_choices_are_rejected_before_anything_runs(write_exp, tmp_path, capsys):
    text = (
        experiment_yaml(matrix="matrix:\n  method: [{name: qlora, r: 4}]\n")
        .replace("logging_every: 2", "logging_every: 2\n  optimizer: adamw_8bit")
        .replace("launch: {}", "launch: {num_processes: 2, distributed: {strategy: deepspeed}}")
    )
    ws = tmp_path / "ws"
    assert main(["--workspace", str(ws), "launch", str(write_exp(text))]) == 2
    err = capsys.readouterr().err
    assert "QLoRA needs a CUDA GPU" in err
    assert "8-bit AdamW (bitsandbytes) needs a CUDA GPU" in err
    assert "deepspeed shards a model across GPUs" in err
    assert not ws.exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only message")
@pytest.mark.parametrize("name", ["gpu.yaml", "zero2.yaml"])
def test_the_gpu_check_files_are_rejected_here_with_reasons(name):
    with pytest.raises(ConfigError) as info:
        load_experiment(REPO / "benchmarks" / "gpu" / name)
    text = str(info.value)
    assert "bf16 mixed precision needs a CUDA GPU" in text
    assert ("QLoRA needs a CUDA GPU" in text) == (name == "gpu.yaml")
    assert ("deepspeed shards a model across GPUs" in text) == (name == "zero2.yaml")
