"""Migration 0008: runs.objective and runs.parent_run_id, back-filled and filled at ingest."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from test_store import make_run

from ftsweep.rundir import SPEC, atomic_write_json, read_json
from ftsweep.store import MIGRATIONS, Store
from ftsweep.store.stage import parent_run_id, run_objective
from ftsweep.workspace import Workspace


def test_old_store_gains_objective_and_parent_from_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftsweep.store import migrations as mig

    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    names = [m.name for m in MIGRATIONS]
    before = names.index("0008_runs_objective_parent")
    monkeypatch.setattr(mig, "MIGRATIONS", MIGRATIONS[:before])  # a store from before 0008
    mig.migrate(con)
    configs = {
        "old": {"method": "lora"},  # from before the objective existed: sft
        "sft": {"training": {"objective": "sft"}},
        "dpo": {
            "training": {"objective": "dpo"},
            "model": {"from_run": {"experiment": "grid", "select": "best", "run_id": "p1"}},
        },
        "empty": {"training": {"objective": ""}, "model": {"from_run": None}},
    }
    for run_id, config in configs.items():
        con.execute(
            "INSERT INTO runs (run_id, experiment, config) VALUES (?, 'x', ?)",
            [run_id, json.dumps(config)],
        )
    monkeypatch.setattr(mig, "MIGRATIONS", MIGRATIONS)
    assert mig.migrate(con) == ["0008_runs_objective_parent"]
    cols = {r[0]: r[1] for r in con.execute("DESCRIBE runs").fetchall()}
    assert cols["objective"] == "VARCHAR" and cols["parent_run_id"] == "VARCHAR"
    got = dict(
        (r[0], (r[1], r[2]))
        for r in con.execute("SELECT run_id, objective, parent_run_id FROM runs").fetchall()
    )
    assert got == {
        "old": ("sft", None),
        "sft": ("sft", None),
        "dpo": ("dpo", "p1"),
        "empty": ("sft", None),
    }
    # the back-fill and ingest agree on every config
    for run_id, config in configs.items():
        assert (run_objective(config), parent_run_id(config)) == got[run_id]


def test_ingest_fills_objective_and_parent(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    parent = make_run(ws, "sft-grid", "lora", 0, {"r": 8})
    child = make_run(ws, "prefs", "lora", 0, {"r": 16})
    parent_id = read_json(parent.file(SPEC))["run_id"]
    spec = read_json(child.file(SPEC))
    spec["config"]["training"] = {"objective": "dpo"}
    spec["config"]["model"] = {
        "from_run": {"experiment": "sft-grid", "select": "best", "run_id": parent_id}
    }
    atomic_write_json(child.file(SPEC), spec)
    with ws.lock(), Store.writer(ws) as store:
        store.ingest_all()
        rows = store.con.execute(
            "SELECT experiment, objective, parent_run_id FROM runs ORDER BY experiment"
        ).fetchall()
    assert rows == [("prefs", "dpo", parent_id), ("sft-grid", "sft", None)]
