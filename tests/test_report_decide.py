"""Reports that decide: the memory budget setting, decision cards, Pareto fronts,
sensitivity views and fairness warnings (issue 9, part A)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_store import fabricate_experiment  # run-directory fabricator shared with the store

from ftsweep.cli import main
from ftsweep.config.load import load_experiment
from ftsweep.errors import ConfigError
from ftsweep.report import render_report
from ftsweep.report_settings import load_settings, record_settings
from ftsweep.workspace import Workspace
from tests.conftest import experiment_yaml

# -- the memory budget is a setting, never a guess ----------------------------------------


def test_report_block_is_validated_and_does_not_change_run_ids(write_exp) -> None:
    plain = load_experiment(write_exp(experiment_yaml()), deep=False)
    text = experiment_yaml() + "report:\n  memory_budget_mb: 512\n"
    budgeted = load_experiment(write_exp(text, "b.yaml"), deep=False)
    assert budgeted.spec.report.memory_budget_mb == 512.0
    assert [r.run_id for r in plain.runs] == [r.run_id for r in budgeted.runs]
    bad = experiment_yaml() + "report:\n  memory_budget_mb: -5\n  memry: 1\n"
    with pytest.raises(ConfigError) as info:
        load_experiment(write_exp(bad, "bad.yaml"), deep=False)
    joined = "\n".join(p.format() for p in info.value.problems)
    assert "report.memory_budget_mb" in joined and "greater than 0" in joined
    assert "report.memry" in joined


def _md(paths: list[Path]) -> str:
    (path,) = [p for p in paths if p.name == "report.md"]
    return path.read_text(encoding="utf-8").replace("\\", "")


def test_budget_comes_from_the_recorded_block_and_the_option_overrides_it(
    tmp_path: Path,
) -> None:
    ws = Workspace(tmp_path / "ws")
    fabricate_experiment(ws, "grid")
    assert load_settings(ws, "grid") == {}
    md = _md(render_report(ws, "grid", tmp_path / "r0"))
    assert "Best under a memory budget" in md and "no memory budget given" in md
    record_settings(ws, "grid", {"memory_budget_mb": 1e9})
    md = _md(render_report(ws, "grid", tmp_path / "r1"))
    assert "Best under 1,000,000,000 MB peak memory" in md
    md = _md(render_report(ws, "grid", tmp_path / "r2", memory_budget_mb=0.5))
    assert "Best under 0.500 MB peak memory" in md and "no config fits" in md


def test_cli_memory_budget_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace(tmp_path / "ws")
    fabricate_experiment(ws, "grid")
    out = tmp_path / "out"
    args = ["--workspace", str(ws.root), "report", "--experiment", "grid", "--out", str(out)]
    assert main([*args, "--memory-budget-mb", "1e9"]) == 0
    assert "Best under 1,000,000,000 MB" in (out / "report.md").read_text().replace("\\", "")
    with pytest.raises(SystemExit) as exc:
        main([*args, "--memory-budget-mb", "-1"])
    assert exc.value.code == 2
    assert "expected a number of MB above 0, got '-1'" in capsys.readouterr().err
