"""The GPU check bundle (benchmarks/gpu): what it covers, and that on CPU it runs nothing.

The bundle itself needs a CUDA GPU (docs/gpu.md); here we check that its files ask for
every GPU option, that a machine without CUDA refuses each of them with reasons, and
that its table is built from run directories as the worker leaves them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

GPU = REPO / "benchmarks" / "gpu"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", GPU / "check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


check = _load()


def _runs() -> list[tuple[str, dict, dict]]:
    """(file, launch block, method entry) of every run the one-GPU bundle launches."""
    out = []
    for name in check.ONE_GPU:
        data = yaml.safe_load((GPU / name).read_text())
        for entry in data["matrix"]["method"]:
            out.append(
                (
                    name,
                    data.get("launch", {}),
                    {
                        **data["training"],
                        **{k.removeprefix("training."): v for k, v in entry.items()},
                    },
                )
            )
    return out


def test_the_bundle_covers_every_gpu_option() -> None:
    runs = _runs()
    assert {r["bits"] for _, _, r in runs if r["name"] == "qlora"} == {4, 8}
    assert {r["precision"] for _, _, r in runs} == {"bf16", "fp16"}
    assert any(r.get("gradient_checkpointing") for _, _, r in runs)
    assert any(r.get("optimizer") == "adamw_8bit" for _, _, r in runs)
    zero = {
        (d["zero_stage"], d["offload"])
        for _, launch, _ in runs
        if (d := launch.get("distributed", {})).get("strategy") == "deepspeed"
    }
    assert zero == {(2, False), (2, True), (3, False), (3, True)}
    fsdp = {
        r["name"]
        for _, launch, r in runs
        if launch.get("distributed", {}).get("strategy") == "fsdp"
    }
    assert fsdp == {"full", "lora"}
    assert {
        v[1]["distributed"]["strategy"] if "distributed" in v[1] else "ddp"
        for v in check.TWO_GPUS.values()
    } == {"ddp", "fsdp", "deepspeed"}
    for name in check.ONE_GPU:  # each file starts with the command that runs it
        assert (GPU / name).read_text().startswith(f"# ftsweep launch benchmarks/gpu/{name}")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU refusal")
def test_on_cpu_the_bundle_trains_nothing_and_says_why(tmp_path: Path) -> None:
    ws, out = tmp_path / "ws", tmp_path / "out"
    assert check.main(["--workspace", str(ws), "--out", str(out)]) == 2
    assert not (ws / "runs").exists()
    report = json.loads((out / "gpu-check.json").read_text())
    rows = {r["file"]: r for r in report["rows"]}
    assert set(rows) == set(check.ONE_GPU)
    assert all(r["status"] == "rejected" for r in rows.values())
    text = {f: " ".join(r["problems"]) for f, r in rows.items()}
    assert "QLoRA needs a CUDA GPU" in text["gpu.yaml"]
    assert "fp16 mixed precision" in text["precision.yaml"]
    assert "8-bit AdamW (bitsandbytes) needs a CUDA GPU" in text["precision.yaml"]
    for name in ("zero2.yaml", "zero2-nooffload.yaml", "zero3.yaml", "zero3-offload.yaml"):
        assert "deepspeed shards a model across GPUs" in text[name]
    assert "fsdp shards a model across GPUs" in text["fsdp.yaml"]
    assert "fsdp.yaml: " in (out / "gpu-check.md").read_text()


def _run_dir(root: Path, method: dict, result: dict | None, failure: dict | None) -> Path:
    d = root / "runs" / "gpu" / method["name"]
    d.mkdir(parents=True)
    spec = {
        "run_id": method["name"],
        "method": method["name"],
        "config": {
            "method": method,
            "training": {
                "precision": "bf16",
                "optimizer": "adamw_8bit",
                "gradient_checkpointing": False,
            },
        },
    }
    (d / "spec.json").write_text(json.dumps(spec))
    if result:
        (d / "result.json").write_text(json.dumps(result))
    if failure:
        (d / "failure.json").write_text(json.dumps(failure))
    return d


def test_rows_and_table_come_from_the_run_directories(tmp_path: Path) -> None:
    done = {
        "peak_memory_mb": 1234.4,
        "train_time_s": 12.34,
        "tokens_per_s": 98765.4,
        "final_eval": {"exact_match": 0.765},
        "steps": 200,
    }
    _run_dir(tmp_path, {"name": "qlora", "bits": 8}, done, None)
    _run_dir(tmp_path, {"name": "full"}, None, {"cause": "CUDA out of memory", "log_tail": "x"})
    rows = [check.row_for("gpu.yaml", d, s) for d, s in check.runs_of(tmp_path, "gpu")]
    assert [r["status"] for r in rows] == ["failed", "complete"]
    assert rows[1]["run"] == "qlora, 8-bit, bf16, adamw_8bit"
    text = check.table(rows)
    assert (
        "| gpu.yaml | qlora, 8-bit, bf16, adamw_8bit | complete | 1,234 | 12.3 | 98,765 | 0.765 |"
        in text
    )
    assert "failed: CUDA out of memory" in text
