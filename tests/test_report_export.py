"""`ftsweep report --format csv|parquet|json`: the leaderboard and per-run tables, read
back and checked against `ftsweep query` on the same store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_store import fabricate_experiment

from ftsweep.cli import main
from ftsweep.report.export import parse_formats
from ftsweep.workspace import Workspace


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("export")
    ws = Workspace(root / "ws")
    fabricate_experiment(ws, "grid")
    out = root / "out"
    args = ["--workspace", str(ws.root), "report", "--experiment", "grid", "--out", str(out)]
    assert main([*args, "--format", "csv,parquet", "--format", "json"]) == 0
    return str(ws.root), out


def _query(ws: str, sql: str, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert main(["--workspace", ws, "query", sql, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _tables(out: Path, name: str) -> dict[str, list[dict]]:
    """The same table from each format, as records."""
    with (out / f"{name}.csv").open(encoding="utf-8", newline="") as fh:
        from_csv = list(csv.DictReader(fh))
    return {
        "csv": from_csv,
        "parquet": pq.read_table(out / f"{name}.parquet").to_pylist(),
        "json": json.loads((out / f"{name}.json").read_text(encoding="utf-8")),
    }


def test_only_the_asked_formats_are_written(exported):
    _, out = exported
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == [
        f"{t}.{f}" for t in ("leaderboard", "runs") for f in ("csv", "json", "parquet")
    ]


def test_run_table_matches_query(exported, capsys):
    ws, out = exported
    expected = _query(
        ws,
        "select run_id, method, status, seed, peak_memory_mb, params->>'r' as r "
        "from runs where experiment = 'grid' order by method, run_id",
        capsys,
    )
    metrics = _query(
        ws,
        "select e.run_id, e.metric, e.value from evals e join runs r using (run_id) "
        "where r.experiment = 'grid' and r.status = 'complete'",
        capsys,
    )
    for fmt, rows in _tables(out, "runs").items():
        assert [r["run_id"] for r in rows] == [e["run_id"] for e in expected], fmt
        by_id = {r["run_id"]: r for r in rows}
        for e in expected:
            row = by_id[e["run_id"]]
            assert row["method"] == e["method"] and row["status"] == e["status"]
            assert int(row["seed"]) == e["seed"]
            if e["peak_memory_mb"] is not None:
                assert float(row["peak_memory_mb"]) == pytest.approx(e["peak_memory_mb"])
            if e["r"] is not None:
                assert int(row["param.r"]) == int(e["r"])
        assert metrics, "the fabricated runs have final-eval metrics"
        for m in metrics:
            assert float(by_id[m["run_id"]][m["metric"]]) == pytest.approx(m["value"]), fmt
    failed = [r for r in _tables(out, "runs")["parquet"] if r["status"] == "failed"]
    assert failed and all(r["accuracy"] is None for r in failed)


def test_leaderboard_matches_query(exported, capsys):
    ws, out = exported
    # best config per method = highest mean accuracy over seeds, as the report ranks
    best = _query(
        ws,
        "select method, params::varchar as p, avg(e.value) as mean, count(*) as n "
        "from runs r join evals e using (run_id) where r.experiment = 'grid' "
        "and r.status = 'complete' and e.metric = 'accuracy' "
        "group by method, p qualify row_number() over (partition by method order by mean desc) = 1 "
        "order by mean desc",
        capsys,
    )
    for fmt, rows in _tables(out, "leaderboard").items():
        assert [r["method"] for r in rows] == [b["method"] for b in best], fmt
        for row, b in zip(rows, best, strict=True):
            assert float(row["accuracy_mean"]) == pytest.approx(b["mean"])
            assert int(row["accuracy_n"]) == b["n"]
            assert int(row["rank"]) == rows.index(row) + 1
            low, high = row["accuracy_low"], row["accuracy_high"]
            if b["n"] > 1:
                assert float(low) <= b["mean"] <= float(high)
            assert len(str(row["run_ids"]).split(",")) == b["n"]


def test_format_option_parsing_and_errors(tmp_path, capsys):
    assert parse_formats(None) == ("html", "md")
    assert parse_formats(["json,CSV", "md"]) == ("md", "csv", "json")
    with pytest.raises(ValueError, match="'xls'.*valid: html, md, csv, parquet, json"):
        parse_formats(["csv,xls"])
    with pytest.raises(SystemExit) as caught:
        main(["--workspace", str(tmp_path), "report", "--format", "xls"])
    assert caught.value.code == 2
    assert "unknown report format 'xls'" in capsys.readouterr().err
