"""The report's SQL-side shaping (curves averaged and downsampled in DuckDB) gives the
numbers the Python path gave."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_store import fabricate_experiment, make_run

from ftsweep.report import queries
from ftsweep.report.viewmodel import CURVE_METRICS, _curves, build_view, curves_from_means
from ftsweep.store import open_reader
from ftsweep.workspace import Workspace


def _view_and_con(ws: Workspace, name: str):
    con = open_reader(ws)
    runs = queries.runs(con, name)
    view = build_view(name, runs, queries.eval_metrics(con, name), [], [])
    return view, con


def test_sql_curves_equal_the_python_curves(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    fabricate_experiment(ws, "grid")
    view, con = _view_and_con(ws, "grid")
    try:
        leaders = list(view.leaderboard)
        owners = {rid: row.label for row in leaders for rid in row.run_ids}
        new = curves_from_means(leaders, queries.curve_means(con, owners, CURVE_METRICS))
        old = _curves(leaders, queries.curves(con, "grid", CURVE_METRICS))
    finally:
        con.close()
    assert [c.metric for c in new] == [c.metric for c in old] == list(CURVE_METRICS)
    assert sum(len(c.series) for c in new) >= 3
    assert any(s.low and s.high for c in new for s in c.series)  # two seeds: a band
    for a, b in zip(new, old, strict=True):
        assert [s.method for s in a.series] == [s.method for s in b.series]
        for sa, sb in zip(a.series, b.series, strict=True):
            assert sa.steps == sb.steps
            assert sa.values == pytest.approx(sb.values)
            assert sa.low == pytest.approx(sb.low) and sa.high == pytest.approx(sb.high)


def test_long_curves_are_binned_to_at_most_max_points(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    for seed in (0, 1):
        make_run(ws, "long", "lora", seed, {"r": 8}, steps=95)
    con = open_reader(ws)
    try:
        ids = [r["run_id"] for r in queries.runs(con, "long")]
        rows = queries.curve_means(con, dict.fromkeys(ids, "lora"), ("loss",), max_points=10)
        raw = queries.curves(con, "long", ("loss",))
        assert queries.curve_means(con, {}, ("loss",)) == []
    finally:
        con.close()
    assert len(rows) == 10 and rows[-1]["step"] == 95 and rows[0]["n"] == 2
    per_step: dict[int, list[float]] = {}
    for r in raw:
        per_step.setdefault(r["step"], []).append(r["value"])
    means = [sum(v) / len(v) for _, v in sorted(per_step.items())]
    # 95 steps in 10 bins of consecutive steps: bin k holds steps i with i * 10 // 95 == k
    for k, row in enumerate(rows):
        members = [m for i, m in enumerate(means) if i * 10 // 95 == k]
        assert row["value"] == pytest.approx(sum(members) / len(members))
