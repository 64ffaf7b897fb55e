"""The report's Stages section (report/stages.py): each stage's gain over its parent run.

The store is built from fabricated run directories (no training): an SFT parent in one
experiment, and in another its DPO children (lora: better, full: worse) beside SFT runs
without a parent, so the leaderboard groups by objective × method.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_report_gfm import check_gfm

from ftsweep.report import render_report
from ftsweep.report.stages import BETTER, NOT_COMPARED, SAME, WORSE, build_stages
from ftsweep.report.stats import bootstrap_mean
from ftsweep.rundir import EVALS, RESULT, SPEC, JsonlAppender, atomic_write_json
from ftsweep.workspace import Workspace

PARENT_EXP = "sft <b>grid</b>"  # odd names: they must come out escaped
CHILD_EXP = "prefs & <i>stages</i>"
N = 20
PARENT_CORRECT = set(range(8))  # the parent gets examples 0-7 right: accuracy 0.4


def write_run(
    ws: Workspace,
    experiment: str,
    run_id: str,
    method: str,
    seed: int,
    correct: set[int],
    eval_loss: float,
    objective: str = "sft",
    parent: str | None = None,
    eval_file: str = "v1",
) -> None:
    """One complete run directory, as a worker leaves it, with given per-example scores."""
    rd = ws.run_dir(experiment, run_id)
    rd.path.mkdir(parents=True)
    config: dict[str, Any] = {
        "method": method,
        "training": {"objective": objective},
        "eval": {"primary_metric": "accuracy", "split": "validation"},
    }
    if parent is not None:
        config["model"] = {
            "from_run": {"experiment": PARENT_EXP, "select": "best", "run_id": parent}
        }
    atomic_write_json(
        rd.file(SPEC),
        {
            "run_id": run_id,
            "experiment": experiment,
            "method": method,
            "seed": seed,
            "params": {"training.objective": objective},
            "config": config,
            "fingerprints": {"data.validation": eval_file, "model": "m1"},
            "created_at": 1_700_000_000.0 + seed,
        },
    )
    ev = JsonlAppender(rd.file(EVALS))
    for i in range(N):
        ev.write(
            {
                "split": "validation",
                "example_id": f"ex{i:02d}",
                "metric": "accuracy",
                "value": float(i in correct),
                "prediction": "p",
                "reference": "r",
            }
        )
    ev.close()
    atomic_write_json(
        rd.file(RESULT),
        {
            "status": "complete",
            "started_at": 1_700_000_100.0,
            "finished_at": 1_700_000_200.0,
            "eval_split": "validation",
            "final_eval": {"accuracy": len(correct) / N, "eval_loss": eval_loss},
        },
    )


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Render the staged experiment (html, md, json tables) and a plain one, once."""
    root = tmp_path_factory.mktemp("stages")
    ws = Workspace(root / "ws")
    write_run(ws, PARENT_EXP, "parent0", "lora", 0, PARENT_CORRECT, 2.0)
    for seed in range(3):  # right on all but 18, 19 and one of 8-10: 0.85 each
        correct = set(range(18)) - {8 + seed}
        write_run(
            ws,
            CHILD_EXP,
            f"dpo-lora-{seed}",
            "lora",
            seed,
            correct,
            1.5 + seed / 10,
            "dpo",
            "parent0",
        )
    for seed in range(2):  # right on nothing: worse than the parent
        write_run(ws, CHILD_EXP, f"dpo-full-{seed}", "full", seed, set(), 3.0, "dpo", "parent0")
    # a parent that was never ingested here: named, no gains
    write_run(ws, CHILD_EXP, "dpo-freeze-0", "freeze", 0, set(), 2.5, "dpo", "ghost")
    for seed in range(2):  # SFT runs of the same experiment, no parent
        write_run(ws, CHILD_EXP, f"sft-lora-{seed}", "lora", seed, set(range(10)), 1.9)
    paths = render_report(
        ws, CHILD_EXP, root / "out", None, formats=("html", "md", "json"), against=PARENT_EXP
    )
    plain = render_report(ws, PARENT_EXP, root / "plain", None, formats=("html", "md"))
    text = {p.name: p.read_text(encoding="utf-8") for p in paths}
    return {
        "html": text["index.html"],
        "md": text["report.md"],
        "stages": json.loads(text["stages.json"]),
        "runs": json.loads(text["runs.json"]),
        "leaderboard": json.loads(text["leaderboard.json"]),
        "plain": {p.name: p.read_text(encoding="utf-8") for p in plain},
    }


def _stage(records: list[dict[str, Any]], label: str, metric: str) -> dict[str, Any]:
    (rec,) = [r for r in records if r["label"] == label and r["metric"] == metric]
    return rec


def test_gain_over_parent_is_computed_on_the_same_examples(reports: dict[str, Any]) -> None:
    rec = _stage(reports["stages"], "lora (dpo)", "accuracy")
    assert rec["parent_run_ids"] == "parent0" and rec["parent_experiments"] == PARENT_EXP
    assert rec["run_ids"] == "dpo-lora-0,dpo-lora-1,dpo-lora-2"
    assert rec["child_mean"] == pytest.approx(0.85) and rec["parent_mean"] == pytest.approx(0.4)
    assert rec["parent_n"] == 1  # one parent: a fixed reference
    # over seeds: 0.85 - 0.4 for every seed, so no spread
    assert rec["gain_mean"] == pytest.approx(0.45) and rec["gain_n"] == 3
    assert rec["gain_low"] == pytest.approx(0.45) and rec["gain_high"] == pytest.approx(0.45)
    # over examples, by hand: 0-7 both right (0), 8-10 two seeds of three (2/3),
    # 11-17 only the child (1), 18-19 neither (0)
    diffs = [0.0] * 8 + [2 / 3] * 3 + [1.0] * 7 + [0.0] * 2
    expected = bootstrap_mean(diffs)
    assert rec["gain_examples_mean"] == pytest.approx(0.45)
    assert rec["gain_examples_n"] == N
    assert rec["gain_examples_low"] == pytest.approx(expected.low)
    assert rec["gain_examples_high"] == pytest.approx(expected.high)
    assert 0 < rec["gain_examples_low"] < 0.45 < rec["gain_examples_high"] < 1
    # seed-averaged scores are not 0/1, so the sign-flip test; significant after Holm
    assert rec["test"] == "sign-flip permutation" and rec["p_holm"] < 0.05
    assert rec["outcome"] == BETTER and rec["verdict"].startswith("lora (dpo) beats its parent")


def test_worse_stage_and_metric_without_examples(reports: dict[str, Any]) -> None:
    worse = _stage(reports["stages"], "full (dpo)", "accuracy")
    assert worse["gain_mean"] == pytest.approx(-0.4) and worse["gain_examples_mean"] == -0.4
    assert worse["test"] == "McNemar exact"  # 0/1 on both sides
    assert worse["outcome"] == WORSE and worse["verdict"].startswith("its parent beats full (dpo)")
    loss = _stage(reports["stages"], "lora (dpo)", "eval_loss")  # aggregate only
    assert loss["gain_mean"] == pytest.approx(-0.4)  # 1.5, 1.6, 1.7 against 2.0
    assert loss["gain_low"] < -0.4 < loss["gain_high"] < 0  # a t-interval over 3 seeds
    assert loss["gain_examples_n"] == 0 and loss["outcome"] == NOT_COMPARED
    assert "no per-example scores" in loss["verdict"]


def test_grouping_by_objective_and_method(reports: dict[str, Any]) -> None:
    board = {r["label"]: r for r in reports["leaderboard"]}
    assert set(board) == {"lora (dpo)", "full (dpo)", "freeze (dpo)", "lora (sft)"}
    assert board["lora (sft)"]["objective"] == "sft" and board["full (dpo)"]["objective"] == "dpo"
    # sft: no parent; freeze's parent is not in the store, so it has no gain records
    assert {r["label"] for r in reports["stages"]} == {"lora (dpo)", "full (dpo)"}
    runs = {r["run_id"]: r for r in reports["runs"]}
    assert runs["dpo-full-1"]["objective"] == "dpo"
    assert runs["dpo-full-1"]["parent_run_id"] == "parent0"
    assert runs["sft-lora-0"]["objective"] == "sft" and runs["sft-lora-0"]["parent_run_id"] is None
    html = reports["html"]
    assert "<th>objective</th>" in html and "best config per method and objective" in html
    assert "| # | objective | method |" in reports["md"]
    # the rows are split by objective, so it gets no heat map of its own
    assert "No hyperparameter takes more than one value across complete runs." in reports["md"]
    # the objective and the parent are shown (grouping, Stages): not "hidden settings"
    assert (
        "from\\_run" not in reports["md"].split("## Stages")[0]
        and "from_run" not in html.split("<h2>Stages")[0]
    )


def test_stages_section_renders_escaped(reports: dict[str, Any]) -> None:
    html, md = reports["html"], reports["md"]
    assert "Stages — gain over the parent run" in html and "## Stages" in md
    assert "sft &lt;b&gt;grid&lt;/b&gt; / parent0 (sft, lora, " in html
    assert "prefs &amp; &lt;i&gt;stages&lt;/i&gt;" in html
    assert "<b>grid" not in html and "<i>stages" not in html
    assert "sft &lt;b&gt;grid&lt;/b&gt; / parent0" in md and "<b>grid" not in md
    assert '<span class="yes">better</span>' in html and '<span class="no">worse</span>' in html
    check_gfm(md)  # the Stages and objective columns keep report.md clean GFM
    assert "ghost (not in the store)" in html and "ghost (not in the store)" in md
    assert "freeze (dpo): parent run ghost is not in the store: ingest its experiment" in html


def test_no_parent_no_stages_section(reports: dict[str, Any]) -> None:
    plain = reports["plain"]
    assert "Stages" not in plain["index.html"] and "Stages" not in plain["report.md"]
    assert "<th>objective</th>" not in plain["index.html"]  # one objective: no column


def _row(label: str, run_ids: tuple[str, ...]) -> Any:
    from ftsweep.report.rows import LeaderRow
    from ftsweep.report.stats import Stat

    none = Stat(None, None, 0)
    return LeaderRow(
        0,
        "lora",
        label,
        0,
        "—",
        none,
        none,
        {},
        none,
        none,
        none,
        none,
        none,
        run_ids,
        objective="dpo",
    )


def test_other_eval_file_or_missing_parent_is_not_paired() -> None:
    def run(rid: str, parent: str | None, fp: str) -> dict[str, Any]:
        return {
            "run_id": rid,
            "experiment": "e",
            "method": "lora",
            "objective": "dpo" if parent else "sft",
            "parent_run_id": parent,
            "params": {},
            "config": {},
            "fingerprints": {"data.validation": fp},
        }

    children = [run("c0", "p", "v2"), run("c1", "p", "v2")]
    evals = [
        {"run_id": r, "metric": "accuracy", "value": v}
        for r, v in (("c0", 0.9), ("c1", 0.8), ("p", 0.5))
    ]
    examples = [
        {"run_id": r, "metric": "accuracy", "example_id": "x", "value": 1.0}
        for r in ("c0", "c1", "p")
    ]
    (row,) = build_stages(
        [_row("lora (dpo)", ("c0", "c1"))],
        children,
        [run("p", None, "v1")],
        evals,
        examples,
        ("accuracy",),
        "validation",
    )
    (gain,) = row.gains
    assert gain.gain.mean == pytest.approx(0.35) and gain.pair is None
    assert gain.outcome == NOT_COMPARED and "different eval files" in gain.verdict
    assert "another validation file" in row.note
    # the parent is not in the store: named, no gain
    (lost,) = build_stages(
        [_row("lora (dpo)", ("c0", "c1"))],
        children,
        [],
        evals,
        examples,
        ("accuracy",),
        "validation",
    )
    assert lost.gains == () and lost.parents[0].experiment is None
    assert "not in the store" in lost.note
    assert SAME == "indistinguishable"  # the outcome name the templates test for


def test_against_another_experiment_pairs_objective_with_objective(
    reports: dict[str, Any],
) -> None:
    # --against the parent's experiment (sft lora only): the SFT row is compared with
    # it; the DPO rows, with the same method, are not set against an SFT run
    md = reports["md"]
    diff = md[md.index("## Against") :]
    diff = diff[: diff.index("\n## ")]  # up to the next section
    rows = [ln for ln in diff.splitlines() if ln.startswith("| lora") or ln.startswith("| full")]
    assert len(rows) == 1 and rows[0].startswith("| lora (sft) |")
    assert (
        "Only in prefs &amp; &lt;i&gt;stages&lt;/i&gt;: freeze (dpo), full (dpo), lora (dpo)."
        in diff
    )


def test_learning_rate_warning_is_per_objective_and_method() -> None:
    from ftsweep.report.fairness import fairness_warnings

    def run(rid: str, objective: str, lr: float) -> dict[str, Any]:
        config = {"training": {"objective": objective, "lr": lr}}
        return {"run_id": rid, "method": "lora", "params": {}, "config": config}

    runs = [run("s1", "sft", 1e-4), run("s2", "sft", 1e-3), run("d1", "dpo", 1e-4)]
    (warning,) = [w for w in fairness_warnings(runs, []) if w.kind == "learning rate"]
    assert "lora (dpo) tried at one learning rate only" in warning.message
    assert "lora (sft) 2" in warning.message
