"""`ftsweep report --against OTHER`: two sweeps compared method by method."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from test_store import fabricate_experiment, make_run

from ftsweep.cli import main
from ftsweep.report.diff import DiffError, build_diff, welch_diff
from ftsweep.report.stats import Stat, summarize
from ftsweep.workspace import Workspace


def test_welch_interval_matches_scipy():
    a, b = [0.61, 0.64, 0.70, 0.66], [0.50, 0.58, 0.49]
    got = welch_diff(summarize(a), summarize(b))
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert got.mean == pytest.approx(np.mean(a) - np.mean(b))
    assert (got.low, got.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    fixed = welch_diff(summarize(a), summarize([0.5]))  # one seed, no spread: a fixed value
    one = sps.ttest_1samp(a, 0.5).confidence_interval(0.95)
    assert (fixed.low, fixed.high) == (pytest.approx(one.low - 0.5), pytest.approx(one.high - 0.5))
    assert welch_diff(summarize([1.0]), summarize([0.5])).low is None
    assert welch_diff(Stat(None, None, 0), summarize(a)).mean is None


@dataclass(frozen=True)
class _Row:
    method: str
    config: str
    primary: Stat
    run_ids: tuple[str, ...]
    label: str = ""
    fixed: bool = False  # as rows.LeaderRow: a method that trains nothing


@dataclass(frozen=True)
class _View:
    experiment: str
    leaderboard: tuple[_Row, ...]
    primary_metric: str = "accuracy"
    higher_is_better: bool = True


N = 60


def _side(exp: str, method: str, skill: float, seeds: int = 3):
    """A leaderboard row and its runs' per-example 0/1 scores (the same examples)."""
    rng = np.random.default_rng(zlib.crc32(f"{exp}/{method}".encode()))
    run_ids = tuple(f"{exp}-{method}-{s}" for s in range(seeds))
    examples, means = [], []
    for rid in run_ids:
        scores = (rng.random(N) < skill).astype(float)
        means.append(scores.mean())
        examples += [
            {"run_id": rid, "example_id": f"ex{i}", "value": v} for i, v in enumerate(scores)
        ]
    row = _Row(method, "r=8", summarize(means), run_ids, method)
    runs = [{"run_id": r, "fingerprints": {"data.test": "same"}} for r in run_ids]
    return row, runs, examples


def _views(skills_a: dict[str, float], skills_b: dict[str, float]):
    parts_a = [_side("a", m, s) for m, s in skills_a.items()]
    parts_b = [_side("b", m, s) for m, s in skills_b.items()]
    view_a = _View("a", tuple(p[0] for p in parts_a))
    view_b = _View("b", tuple(p[0] for p in parts_b))
    runs_a = [r for p in parts_a for r in p[1]]
    runs_b = [r for p in parts_b for r in p[1]]
    examples = [e for p in parts_a + parts_b for e in p[2]]
    return view_a, runs_a, view_b, runs_b, examples


def test_identical_sweeps_show_no_difference():
    view_a, runs_a, _, _, examples = _views({"lora": 0.6, "full": 0.8}, {})
    diff = build_diff(view_a, runs_a, view_a, runs_a, "test", examples)
    assert diff.same_examples and [r.method for r in diff.rows] == ["full", "lora"]
    for row in diff.rows:
        assert row.diff.mean == 0 and row.pair is not None and row.pair.p_value == 1.0
        assert row.verdict.startswith("no detectable difference at n = 60 examples")
    assert diff.only_here == diff.only_there == ()


def test_a_clear_change_is_claimed_and_unshared_methods_listed():
    view_a, runs_a, view_b, runs_b, examples = _views(
        {"lora": 0.95, "full": 0.5, "prefix": 0.3}, {"lora": 0.05, "full": 0.5, "ia3": 0.4}
    )
    diff = build_diff(view_a, runs_a, view_b, runs_b, "test", examples)
    rows = {r.method: r for r in diff.rows}
    assert set(rows) == {"lora", "full"}
    # seed-averaged scores are not 0/1: the permutation test, not McNemar
    assert rows["lora"].pair is not None and rows["lora"].pair.test == "sign-flip permutation"
    assert rows["lora"].verdict == "a: lora beats b: lora"
    assert rows["lora"].diff.low is not None and rows["lora"].diff.low > 0
    assert rows["full"].verdict.startswith("no detectable difference")
    # Holm across the two shared methods: the larger p is never below its raw value
    assert all(r.pair.p_holm >= r.pair.p_value for r in diff.rows if r.pair)  # type: ignore[operator]
    assert diff.only_here == ("prefix",) and diff.only_there == ("ia3",)


def test_other_test_data_means_no_paired_test():
    view_a, runs_a, view_b, runs_b, examples = _views({"lora": 0.95}, {"lora": 0.05})
    changed = [{**r, "fingerprints": {"data.test": "v2"}} for r in runs_b]
    diff = build_diff(view_a, runs_a, view_b, changed, "test", examples)
    assert not diff.same_examples and diff.rows[0].pair is None
    assert "data.test fingerprint" in diff.rows[0].verdict
    assert diff.rows[0].diff.low is not None  # the seed interval still compares them


def test_no_shared_method_or_another_primary_metric_is_an_error():
    view_a, runs_a, view_b, runs_b, examples = _views({"lora": 0.5}, {"full": 0.5})
    with pytest.raises(DiffError, match=r"share no method.*a: lora; b: full"):
        build_diff(view_a, runs_a, view_b, runs_b, "test", examples)
    other_metric = _View("b", view_a.leaderboard, primary_metric="bleu")
    with pytest.raises(DiffError, match="different primary metrics"):
        build_diff(view_a, runs_a, other_metric, runs_a, "test", examples)


@pytest.fixture
def two_sweeps(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    fabricate_experiment(ws, "before")
    for seed in (0, 1):  # run ids must differ from "before"'s: an extra varied value
        make_run(ws, "after", "lora", seed, {"r": 8, "v": 2})
        make_run(ws, "after", "prefix", seed, {"v": 2})
    make_run(ws, "lonely", "ia3", 0, {"v": 3})
    return ws


def test_cli_against(two_sweeps: Workspace, tmp_path: Path, capsys):
    ws = str(two_sweeps.root)
    out = tmp_path / "out"
    args = ["--workspace", ws, "report", "--experiment", "after", "--out", str(out)]
    assert main([*args, "--against", "before"]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Against before" in md
    assert "| lora | r=8, v=2 | r=" in md
    assert "Only in after: prefix." in md and "Only in before: base, full." in md
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Against before" in html and "Only in before: base, full." in html
    capsys.readouterr()
    assert main([*args, "--against", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no runs of experiment 'nope'" in err and "before" in err
    assert main([*args, "--against", "lonely"]) == 2
    assert "share no method" in capsys.readouterr().err
    assert main(["--workspace", ws, "report", "--experiment", "after", "--out", str(out)]) == 0
    assert "Against" not in (out / "report.md").read_text(encoding="utf-8")
