"""The report's search sections, on real Optuna studies written to a journal (no training).

Each test builds studies the way the search driver does (journal storage, user attrs,
trials with params, values, intermediate values and run ids), fabricates the trials'
run directories, ingests both into the store and renders the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from test_store import fabricate_experiment, make_run

from ftsweep.report import render_report
from ftsweep.report.search_queries import StudyFacts
from ftsweep.report.search_view import build_search_view
from ftsweep.rundir import SPEC, atomic_write_json, read_json
from ftsweep.search.study import journal_path, open_storage
from ftsweep.store import Store
from ftsweep.store.trials import replace_trials, trial_rows
from ftsweep.workspace import Workspace

EXP = "srch"
MAX_STEPS = 12
XSS = "<script>alert(1)</script>"
EM = {"metric": "exact_match", "direction": "maximize"}
TP = {"metric": "trainable_params", "direction": "minimize"}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _dists(method: str) -> dict[str, Any]:
    if method == "prefix":
        return {
            "num_virtual_tokens": CategoricalDistribution([8, 16]),
            "training.lr": FloatDistribution(1e-3, 1e-1, log=True),
        }
    return {
        "r": IntDistribution(4, 16, step=4),
        "training.lr": FloatDistribution(1e-4, 1e-2, log=True),
    }


def _run(ws: Workspace, exp: str, method: str, params: dict[str, Any], state: str) -> str:
    """A run directory of one trial, with max_steps in its resolved config like a real run."""
    rd = make_run(ws, exp, method, 0, params, state="failed" if state != "complete" else state)
    if state == "pruned":
        rd.write_failure("pruned by the search", pruned=True)
    spec = read_json(rd.file(SPEC))
    spec["config"]["training"] = {"max_steps": MAX_STEPS}
    atomic_write_json(rd.file(SPEC), spec)
    return rd.path.name


def make_search(
    ws: Workspace,
    exp: str,
    trials: dict[str, list[dict[str, Any]]],
    objectives: list[dict[str, str]],
    dists: Callable[[str], dict[str, Any]] = _dists,
) -> list[optuna.Study]:
    """Per-method studies in the experiment's journal, with their trials' run directories.

    Each trial: params, state ("complete"/"pruned"/"fail"), values (complete), steps
    (intermediate steps reported before pruning), source ("ftsweep" or "grid").
    """
    storage = open_storage(journal_path(ws, exp))
    directions = [o["direction"] for o in objectives]
    sign = -1.0 if directions[0] == "maximize" else 1.0
    studies = []
    for method, specs in trials.items():
        study = optuna.create_study(
            study_name=f"{exp}/{method}", storage=storage, directions=directions
        )
        for attr, value in (
            ("experiment", exp),
            ("method", method),
            ("budget", "per_method"),
            ("objectives", objectives),
            ("intermediate_sign", sign),
            ("intermediate_metric", "eval_loss"),
        ):
            study.set_user_attr(attr, value)
        for spec in specs:
            state, values = spec["state"], spec.get("values")
            run_id = _run(ws, exp, method, spec["params"], state)
            if state == "pruned" and spec["steps"] and len(objectives) == 1:
                values = [sign * (3.0 - spec["steps"][-1] / 10)]  # as Optuna's tell(PRUNED)
            study.add_trial(
                create_trial(
                    state={
                        "complete": TrialState.COMPLETE,
                        "pruned": TrialState.PRUNED,
                        "fail": TrialState.FAIL,
                    }[state],
                    params=spec["params"],
                    distributions={k: dists(method)[k] for k in spec["params"]},
                    values=values,
                    intermediate_values={s: sign * (3.0 - s / 10) for s in spec.get("steps", [])},
                    user_attrs={
                        "method": method,
                        "source": spec.get("source", "ftsweep"),
                        "run_ids": [run_id],
                    },
                )
            )
        studies.append(study)
    with ws.lock(), Store.writer(ws) as store:
        store.ingest_all()
        replace_trials(store.con, exp, trial_rows(exp, studies))
    return studies


def _t(
    state: str,
    values: list[float] | None = None,
    steps: tuple[int, ...] = (),
    source: str = "ftsweep",
    **params: Any,
) -> dict[str, Any]:
    return {
        "state": state,
        "values": values,
        "steps": list(steps),
        "source": source,
        "params": params,
    }


SINGLE = {
    "lora": [
        _t("complete", [0.125], (4, 8, 12), source="grid", r=4, **{"training.lr": 1e-3}),
        _t("complete", [0.25], (4, 8, 12), r=8, **{"training.lr": 2e-3}),
        _t("pruned", steps=(4,), r=12, **{"training.lr": 1e-4}),
        _t("complete", [0.5], (4, 8, 12), r=16, **{"training.lr": 5e-3}),
        _t("pruned", steps=(4, 8), r=4, **{"training.lr": 2e-4}),
    ],
    "prefix": [
        _t("complete", [0.0625], (4, 8, 12), num_virtual_tokens=8, **{"training.lr": 1e-2}),
        _t("pruned", steps=(4,), num_virtual_tokens=16, **{"training.lr": 5e-2}),
        _t("fail", num_virtual_tokens=16, **{"training.lr": 2e-3}),
    ],
}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    make_search(workspace, EXP, SINGLE, [EM])
    return workspace


def _render(ws: Workspace, exp: str, out: Path) -> tuple[str, str]:
    paths = render_report(ws, exp, out, None)
    (html,) = [p.read_text(encoding="utf-8") for p in paths if p.name == "index.html"]
    (md,) = [p.read_text(encoding="utf-8") for p in paths if p.name == "report.md"]
    return html, md


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_search_sections_render_with_the_studies_numbers(ws: Workspace, tmp_path: Path) -> None:
    html, md = _render(ws, EXP, tmp_path / "out")
    for heading in (
        "Budget per method",
        "Optimisation history",
        "Best so far per method",
        "Parameter importances",
        "Parallel coordinates",
        "Pruning",
    ):
        assert f"<h3>{heading}</h3>" in html and f"### {heading}" in md
    assert "<h3>Pareto front</h3>" not in html  # one objective: no search Pareto section
    # budget: searched trials by state, the warm-start (grid) trial apart
    assert "| lora | 2 | 2 | 0 | 0 | 0 | 4 | 1 |" in md
    assert "| prefix | 1 | 1 | 1 | 0 | 0 | 3 | 0 |" in md
    # pruning: lora saved (12 - 4) + (12 - 8) of 4 x 12 steps, prefix 12 - 4 of 3 x 12
    assert "| lora | 4 | 2 | 50.0 | 6.00 | 12 | 48 | 25.0 |" in md  # 3 significant digits
    assert "| prefix | 3 | 1 | 33.3 | 4.00 | 8 | 36 | 22.2 |" in md
    # best so far: lora's best is its trial 3 (0.5), ranked above prefix (0.0625)
    best = _section(md, "### Best so far", "### Parameter")
    assert best.index("| lora | srch/lora #3 | 0.500 |") < best.index("| prefix | srch/prefix #0 |")
    assert "r=16, training.lr=0.005" in best
    # importances: lora has 3 complete trials, prefix 1 (the reason is said)
    imp = _section(html, "<h3>Parameter importances</h3>", "<h3>Parallel")
    assert "<td>r</td>" in imp and "<td>training.lr</td>" in imp
    assert "1 complete trial(s); importances need at least 2" in imp
    assert "(study srch/lora, 3 complete trials)" in imp
    # figures: history, best-so-far, one parallel view per method
    # 2 training curves + the grid Pareto figure + 4 search figures
    assert html.count("<svg") == 3 + 4
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    # the trial table: pruned trials with the step they reached, warm start marked
    assert "| srch/lora | 4 | lora | pruned | — | 8 | r=4, training.lr=0.0002 |" in md
    assert "complete (warm start)" in md
    # a pruned trial keeps its last intermediate value in Optuna: never shown as an objective
    assert "4 trial(s) without a value" in html and "-2.2" not in md


def test_pareto_front_is_highlighted(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    trials = {
        "lora": [
            _t("complete", [0.5, 1000.0], r=4),  # front
            _t("complete", [0.3, 2000.0], r=8),  # dominated by the one above
            _t("complete", [0.5, 1500.0], r=12),  # dominated: as good, costlier
        ],
        "prefix": [
            _t("complete", [0.4, 500.0], num_virtual_tokens=8),  # front: cheapest
            _t("complete", [0.25, 800.0], num_virtual_tokens=16),  # dominated
        ],
    }
    make_search(ws, "par", trials, [EM, TP])
    html, md = _render(ws, "par", tmp_path / "out")
    section = _section(html, "<h3>Pareto front</h3>", "<h3>Pruning</h3>")
    front_rows = re.findall(r'<tr class="front"><td>(\w+)</td><td>par/\w+ #(\d)</td>', section)
    assert sorted(front_rows) == [("lora", "0"), ("prefix", "0")]
    assert section.count("<tr") == 1 + 5  # header + every complete trial
    assert section.count('<span class="yes">yes</span>') == 2 and "<svg" in section
    md_section = _section(md, "### Pareto front", "### Pruning")
    assert md_section.count("| **yes** |") == 2
    assert "| prefix | par/prefix #0 | 0.400 | 500 | **yes** |" in md_section
    assert "| lora | par/lora #2 | 0.500 | 1,500 | no |" in md_section
    assert "the trials nearest the Pareto front" in html  # importances say what they measure


def test_no_search_section_without_trials(ws: Workspace, tmp_path: Path) -> None:
    fabricate_experiment(ws, "grid")
    html, md = _render(ws, "grid", tmp_path / "grid")
    assert "<h2>Search</h2>" not in html and "## Search" not in md
    for heading in ("Budget per method", "Optimisation history", "Pareto front", "Pruning"):
        assert f"<h3>{heading}</h3>" not in html and f"### {heading}\n" not in md
    html, md = _render(ws, EXP, tmp_path / "srch")
    assert "<h2>Search</h2>" in html and "## Search" in md


def test_hostile_method_and_param_names_are_escaped(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    param = "<img src=x onerror=alert(2)>"
    trials = {XSS: [_t("complete", [v], **{param: p}) for v, p in ((0.5, 1.0), (0.25, 2.0))]}
    make_search(ws, "x", trials, [EM], lambda method: {param: FloatDistribution(0.5, 4.0)})
    html, md = _render(ws, "x", tmp_path / "out")
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<script" not in md and "<img" not in md and "&lt;img src=x" in md


def test_missing_journal_still_renders_what_the_store_knows(ws: Workspace, tmp_path: Path) -> None:
    journal_path(ws, EXP).unlink()
    html, md = _render(ws, EXP, tmp_path / "out")
    assert "no study journal at" in html and "no study journal at" in md
    assert "No best trial: the objective&#39;s direction is unknown" in html
    assert (
        "| lora | 4 | 2 | 50.0 | 6.00 | 12 | 48 | 25.0 |" in md
    )  # 3 significant digits  # pruning needs only the store
    assert not journal_path(ws, EXP).exists()  # the report never creates a journal


def _row(
    number: int, state: str, params: dict[str, Any], value: float | None, method: str = "lora"
) -> dict[str, Any]:
    return {
        "study": "e",
        "number": number,
        "method": method,
        "state": state,
        "source": "ftsweep",
        "params": params,
        "value": value,
        "objective_values": [value] if value is not None else None,
        "intermediate": {},
        "last_step": None,
        "run_ids": [],
    }


def test_the_report_finds_the_journal_without_importing_the_search_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ftsweep.report; "
        "print('ftsweep.search.study' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]  # one owner of the path, in a light module


def test_shared_study_names_and_best_so_far_are_per_method() -> None:
    rows = [
        _row(0, "complete", {"method": "lora", "lora:r": 8}, 2.0),
        _row(1, "complete", {"method": "full", "full:training.lr": 0.01}, 1.0, "full"),
        _row(2, "complete", {"method": "lora", "lora:r": 4}, 1.5),
        _row(3, "complete", {"method": "lora", "lora:r": 16}, 3.0),
    ]
    facts = StudyFacts(objectives=(("eval_loss", "minimize"),), budget="shared")
    view = build_search_view(rows, [], facts)
    assert view is not None and build_search_view([], [], facts) is None
    assert [t.params for t in view.trials] == ["r=8", "training.lr=0.01", "r=4", "r=16"]
    curves = {c.method: (c.trials, c.best) for c in view.best.curves}
    assert curves["lora"] == ((1, 2, 3), (2.0, 1.5, 1.5))  # minimised: best only goes down
    (lora,) = [s for s in view.history.series if s.method == "lora"]
    assert lora.best_numbers == (0, 2, 3) and lora.best_values == (2.0, 1.5, 1.5)
    assert [(b.method, b.number) for b in view.best.rows] == [("full", 1), ("lora", 2)]
    (par,) = [p for p in view.parallel if p.method == "lora"]
    assert [a.name for a in par.axes] == ["r"]
    assert [line.coords for line in par.lines] == [(0.3333333333333333,), (0.0,), (1.0,)]
