"""benchmarks/search_efficiency.py without training: the grid it derives from
experiments/search.yaml, and its step / best accounting over fake run directories."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ftsweep.config.load import load_experiment

ROOT = Path(__file__).resolve().parents[1]
SEARCH_FILE = ROOT / "experiments" / "search.yaml"


@pytest.fixture(scope="module")
def se() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "search_efficiency", ROOT / "benchmarks" / "search_efficiency.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def search_cfg() -> dict[str, Any]:
    return yaml.safe_load(SEARCH_FILE.read_text())


def _space(search_cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in search_cfg["search"]["space"]["method"]}


def test_grid_counts_and_lrs_inside_the_space(se: ModuleType, search_cfg: dict[str, Any]) -> None:
    grid = se.derive_grid(search_cfg, SEARCH_FILE.parent)
    assert se.grid_points(grid) == {"full": 8, "lora": 18, "prefix": 18}
    assert grid["experiment"] == "search-grid" and "search" not in grid
    assert grid["launch"]["max_parallel"] == 2
    for key in ("model", "data", "training", "eval", "seeds"):
        if key not in ("model", "data"):
            assert grid[key] == search_cfg[key]
    space = _space(search_cfg)
    for entry in grid["matrix"]["method"]:
        own = space[entry["name"]]
        low, high = own["training.lr"]["float"]
        lrs = entry["training.lr"]
        assert len(lrs) == (8 if entry["name"] == "full" else 6)
        assert lrs == sorted(set(lrs))
        assert low <= lrs[0] and lrs[-1] <= high
        assert math.isclose(lrs[0], low, rel_tol=5e-3) and math.isclose(lrs[-1], high, rel_tol=5e-3)
        assert all(float(f"{x:.3g}") == x for x in lrs)
        ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
        assert max(ratios) / min(ratios) < 1.02  # log-spaced
        for key, value in own.items():  # choices become axes; fixed values stay
            if key in ("name", "pruner", "training.lr"):
                continue
            assert entry[key] == (value["choices"] if isinstance(value, dict) else value)
        assert "pruner" not in entry


def test_grid_file_is_a_valid_matrix_with_absolute_paths(
    se: ModuleType, search_cfg: dict[str, Any], tmp_path: Path
) -> None:
    grid = se.derive_grid(search_cfg, SEARCH_FILE.parent)
    for block, key in se.PATH_KEYS:
        assert Path(grid[block][key]).is_absolute() and Path(grid[block][key]).exists()
    file = tmp_path / "elsewhere" / "search-grid.yaml"
    se.write_yaml(grid, file)
    exp = load_experiment(file, deep=False)
    assert len(exp.runs) == 44
    assert {r.method for r in exp.runs} == {"full", "lora", "prefix"}


def test_log_points_stay_inside_the_range(se: ModuleType) -> None:
    assert se.log_points(1e-4, 1e-2, 3) == [1e-4, 1e-3, 1e-2]
    pts = se.log_points(0.0012345, 0.012366, 4)  # rounding would leave the range at both ends
    assert pts[0] == 0.0012345 and pts[-1] == 0.012366 and pts[1:3] == [0.00266, 0.00574]


def test_search_variant_sets_only_seed_and_name(se: ModuleType, search_cfg: dict[str, Any]) -> None:
    before = json.dumps(search_cfg, sort_keys=True)
    v = se.search_variant(search_cfg, SEARCH_FILE.parent, 2)
    assert json.dumps(search_cfg, sort_keys=True) == before  # the original is untouched
    assert v["experiment"] == "search-s2" and v["search"]["seed"] == 2
    assert {k: val for k, val in v["search"].items() if k != "seed"} == {
        k: val for k, val in search_cfg["search"].items() if k != "seed"
    }
    assert Path(v["model"]["path"]).is_absolute()


def _run(
    ws: Path,
    exp: str,
    run_id: str,
    method: str,
    *,
    em: float | None = None,
    steps: int | None = None,
    failure: dict[str, Any] | None = None,
    heartbeat_step: int | None = None,
) -> None:
    rd = ws / "runs" / exp / run_id
    rd.mkdir(parents=True)
    (rd / "spec.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "method": method,
                "params": {"training.lr": 0.001},
                "seed": 0,
                "trial": {"number": len(list(rd.parent.iterdir())) - 1},
            }
        )
    )
    if em is not None:
        (rd / "result.json").write_text(
            json.dumps({"status": "complete", "steps": steps, "final_eval": {"exact_match": em}})
        )
    if failure is not None:
        (rd / "failure.json").write_text(json.dumps(failure))
    if heartbeat_step is not None:
        (rd / "heartbeat.json").write_text(json.dumps({"step": heartbeat_step}))


def _fake_search(ws: Path, exp: str) -> None:
    _run(ws, exp, "a" * 12, "full", em=0.80, steps=250)
    _run(ws, exp, "b" * 12, "lora", em=0.85, steps=250)
    _run(
        ws,
        exp,
        "c" * 12,
        "lora",
        failure={"cause": "pruned", "pruned": True, "step": 50, "steps": 50},
    )
    _run(ws, exp, "d" * 12, "prefix", failure={"cause": "pruned", "pruned": True, "step": 100})
    _run(ws, exp, "e" * 12, "full", failure={"cause": "nan", "pruned": False}, heartbeat_step=30)
    (ws / "runs" / exp / "not-a-run").mkdir()  # no spec.json: ignored


def test_step_and_best_accounting(se: ModuleType, tmp_path: Path) -> None:
    _fake_search(tmp_path, "search-s0")
    runs = se.collect_runs(tmp_path, "search-s0")
    assert [r["state"] for r in runs] == ["complete", "complete", "pruned", "pruned", "failed"]
    s = se.summarize(runs)
    assert s["steps"] == 250 + 250 + 50 + 100 + 30
    assert s["best_exact_match"] == 0.85 and s["best"]["method"] == "lora"
    assert (s["runs"], s["complete"], s["pruned"], s["failed"]) == (5, 2, 2, 1)
    assert se.summarize(se.collect_runs(tmp_path, "missing"))["steps"] == 0


def test_compare_medians_and_verdict(se: ModuleType) -> None:
    grid = {"runs": 44, "steps": 11000, "best_exact_match": 0.90}

    def search(steps: int, em: float) -> dict[str, Any]:
        return {
            "steps": steps,
            "best_exact_match": em,
            "runs": 15,
            "pruned": 4,
            "failed": 0,
            "best": None,
        }

    ok = se.compare(grid, {0: search(3000, 0.895), 1: search(3500, 0.80), 2: search(2000, 0.91)})
    assert ok["median"]["steps"] == 3000 and ok["median"]["best_exact_match"] == 0.895
    assert ok["target"]["pass"]
    assert "PASS" in se.render_table(ok)
    miss = se.compare(grid, {0: search(3400, 0.90), 1: search(3500, 0.90), 2: search(2000, 0.85)})
    assert not miss["target"]["pass"] and not miss["target"]["steps_ok"] and miss["target"]["em_ok"]
    table = se.render_table(miss)
    assert "MISS" in table and "30.9%" in table and "steps 30.9% > 30%" in table


def test_main_reuses_the_grid_data_and_writes_the_table(
    se: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / se.GRID_JSON).write_text(
        json.dumps(
            {
                "measured_at": "then",
                "totals": {"runs": 44, "steps": 11000, "best_exact_match": 0.86, "best": None},
            }
        )
    )

    def fake_launch(file: Path, ws: Path, log: Path, source: Path = se.ROOT) -> tuple[int, float]:
        exp = yaml.safe_load(file.read_text())["experiment"]
        _fake_search(ws, exp)
        return 0, 1.0

    monkeypatch.setattr(se, "launch", fake_launch)
    rc = se.main(
        [
            "--workdir",
            str(tmp_path / "work"),
            "--data-dir",
            str(data),
            "--no-snapshot",
            "--seeds",
            "0,1,2",
        ]
    )
    out = json.loads((data / se.TABLE_JSON).read_text())
    assert [r["seed"] for r in out["seeds"]] == [0, 1, 2]
    assert out["median"]["steps"] == 680 and out["target"]["pass"] and rc == 0
    assert (tmp_path / "work" / "search-s1" / "search-s1.yaml").exists()
