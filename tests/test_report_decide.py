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


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One report of the fabricated experiment (rendering draws figures: do it once)."""
    root = tmp_path_factory.mktemp("decide")
    ws = Workspace(root / "ws")
    fabricate_experiment(ws, "grid")
    record_settings(ws, "grid", {"memory_budget_mb": 1e9})
    paths = render_report(ws, "grid", root / "out")
    html = next(p for p in paths if p.name == "index.html").read_text(encoding="utf-8")
    return html, _md(paths)


def test_budget_comes_from_the_recorded_block_and_the_option_overrides_it(
    tmp_path: Path, rendered: tuple[str, str]
) -> None:
    from ftsweep.report import _load_views

    assert "Best under 1,000,000,000 MB peak memory" in rendered[1]  # the recorded block
    ws = Workspace(tmp_path / "ws")
    fabricate_experiment(ws, "grid")
    assert load_settings(ws, "grid") == {}
    (view,) = _load_views(ws, "grid")
    card = view.cards[1]
    assert (card.title, card.label) == ("Best under a memory budget", None)
    assert "no memory budget given" in card.evidence
    record_settings(ws, "grid", {"memory_budget_mb": 1e9})
    (view,) = _load_views(ws, "grid")
    assert view.memory_budget_mb == 1e9 and view.cards[1].label is not None
    (view,) = _load_views(ws, "grid", 0.5)  # the option wins over the recorded block
    assert view.cards[1].title == "Best under 0.500 MB peak memory"
    assert view.cards[1].label is None and "no trained config fits" in view.cards[1].evidence


def test_cli_memory_budget_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ftsweep.report

    seen: dict = {}
    monkeypatch.setattr(ftsweep.report, "render_report", lambda *a, **kw: seen.update(kw) or [])
    args = ["--workspace", str(tmp_path / "ws"), "report", "--experiment", "grid"]
    assert main([*args, "--memory-budget-mb", "1e9"]) == 0
    assert seen["memory_budget_mb"] == 1e9
    assert main(args) == 0 and seen["memory_budget_mb"] is None
    with pytest.raises(SystemExit) as exc:
        main([*args, "--memory-budget-mb", "-1"])
    assert exc.value.code == 2
    assert "expected a number of MB above 0, got '-1'" in capsys.readouterr().err


# -- decision cards on hand-built rows ----------------------------------------------------


def _run(method: str, seed: int, acc_metric: str = "accuracy", **costs: float) -> dict:
    run = {
        "run_id": f"{method}-{seed}",
        "method": method,
        "status": "complete",
        "params": {"seed": seed},
        "config": {"eval": {"primary_metric": acc_metric, "split": "val"}},
        "fingerprints": {"data.train": "d1", "model": "m1"},
        "provenance": {},
        "failure_cause": None,
        "failure_log_tail": None,
    }
    run.update(costs)
    return run


# (method, primary per seed, peak MB, train s, size MB, trainable params)
CARD_TABLE = [
    ("full", (0.90, 0.80, 0.85), 4000.0, 3600.0, 400.0, 1000),  # best, unstable, big, slow
    ("lora", (0.845, 0.845, 0.846), 1500.0, 900.0, 2.0, 10),  # within 0.01, small, stable
    ("ia3", (0.50, 0.60, 0.55), 1000.0, 60.0, 1.0, 5),  # poor but very fast
    ("base", (0.10,), 900.0, 0.0, 0.5, 0),  # the untrained reference
]


def _card_view(metric: str = "exact_match", budget: float | None = 2000.0, table=CARD_TABLE):
    from ftsweep.report.viewmodel import build_view

    runs, evals = [], []
    for method, values, mb, secs, size, params in table:
        for seed, value in enumerate(values):
            runs.append(
                _run(
                    method,
                    seed,
                    metric,
                    peak_memory_mb=mb,
                    train_time_s=secs,
                    artifact_size_mb=size,
                    trainable_params=params,
                    tokens_seen=1000.0,
                )
            )
            evals.append({"run_id": f"{method}-{seed}", "metric": metric, "value": value})
    return build_view("x", runs, evals, [], [], memory_budget_mb=budget)


def test_all_five_cards_pick_by_their_stated_rules_and_show_evidence() -> None:
    view = _card_view()
    cards = {c.title: c for c in view.cards}
    assert list(cards) == [
        "Best overall",
        "Best under 2,000 MB peak memory",
        "Best per training hour",
        "Smallest adapter within 0.0100 of the best",
        "Most stable across seeds",
    ]
    best = cards["Best overall"]
    assert best.label == "full" and best.run_ids == ("full-0", "full-1", "full-2")
    assert "exact_match 0.850 [0.726, 0.974] (n=3), ranked first" in best.evidence
    assert "against the runner-up lora: no detectable difference" in best.evidence
    budget = cards["Best under 2,000 MB peak memory"]
    assert budget.label == "lora" and budget.evidence.endswith(
        "; peak memory 1,500 MB [1,500, 1,500] over 3 seeds, highest seed 1,500 MB"
    )
    hour = cards["Best per training hour"]
    # gain over base per hour of loop: full 0.75/1 h, lora 0.745/0.25 h, ia3 0.45/(1/60) h
    assert hour.label == "ia3" and hour.evidence.startswith("27.0 exact_match over base (0.100)")
    assert hour.evidence.endswith("in 60.0 s [60.0, 60.0] over 3 seeds")
    small = cards["Smallest adapter within 0.0100 of the best"]
    assert small.label == "lora" and small.evidence.startswith("2.00 MB on disk (10 trainable")
    assert "1 point = 1% of its range [0, 1.00]" in small.evidence
    stable = cards["Most stable across seeds"]
    assert stable.label == "lora" and "over n=3 seeds" in stable.evidence
    assert all(c.config == "—" for c in view.cards)  # nothing varies: the config says so


def test_cards_that_pick_nothing_say_why() -> None:
    tight = {c.title: c for c in _card_view(budget=100.0).cards}
    card = tight["Best under 100 MB peak memory"]
    assert card.label is None and card.run_ids == ()
    # base (900 MB) trains nothing: it is no answer to "how to fine-tune under 100 MB"
    assert (
        card.evidence == "no trained config fits: the least peak memory (highest seed) is 1,000 MB"
    )
    no_base = [row for row in CARD_TABLE if row[0] != "base"]
    loss = {c.title: c for c in _card_view("eval_loss", None, no_base).cards}
    assert loss["Best overall"].label == "ia3"  # lowest loss wins
    assert loss["Best per training hour"].label is None
    assert "needs the untrained base model" in loss["Best per training hour"].evidence
    one_seed = [(m, v[:1], *rest) for m, v, *rest in CARD_TABLE]
    stable = {c.title: c for c in _card_view(table=one_seed).cards}["Most stable across seeds"]
    assert stable.label is None and stable.evidence == "no config has two seeds"


def test_one_point_follows_the_metrics_declared_range() -> None:
    from ftsweep.report.cards import decision_cards, one_point

    assert one_point(0.8, (0.0, 1.0))[0] == pytest.approx(0.01)
    assert one_point(35.0, (0.0, 100.0))[0] == pytest.approx(1.0)
    assert one_point(2.5, (0.0, None)) == (
        0.025,
        "1% of the best value (the metric has no upper bound)",
    )
    assert decision_cards([], "accuracy", True) == []


# -- Pareto fronts ------------------------------------------------------------------------


def test_non_dominated_directions_ties_and_one_point() -> None:
    from ftsweep.report.pareto import non_dominated

    assert non_dominated([], (False, True)) == []
    assert non_dominated([(5.0, 0.5)], (False, True)) == [True]
    # cost low is better, quality high is better
    pts = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (2.0, 0.4), (1.0, 0.5)]
    assert non_dominated(pts, (False, True)) == [True, True, False, False, True]  # tie kept
    # the same points when the cost is better high (throughput): (3, 0.8) and (2, 0.9) win
    assert non_dominated(pts, (True, True)) == [False, True, True, False, False]
    # quality better low (a loss): (2, 0.4) is now the best quality, so it joins the front
    assert non_dominated(pts, (False, False)) == [True, False, False, True, True]
    assert non_dominated([(1.0, 1.0), (1.0, 1.0)], (False, True)) == [True, True]


def test_pareto_axes_leave_out_the_base_model_and_sort_by_cost() -> None:
    view = _card_view()
    by_key = {a.key: a for a in view.pareto}
    assert list(by_key) == [
        "peak_memory_mb",
        "trainable_params",
        "artifact_size_mb",
        "train_time_s",
        "tokens_per_s",
    ]
    mem = by_key["peak_memory_mb"]
    assert [p.label for p in mem.points] == ["ia3", "lora", "full"]  # base left out
    assert [p.on_front for p in mem.points] == [True, True, True]
    # tokens_per_s was never recorded: no points, and the template says so
    assert by_key["tokens_per_s"].points == ()
    assert mem.points[2].y.n == 3 and mem.points[2].x.mean == 4000.0


def test_pareto_section_renders_figure_and_front_tables(rendered: tuple[str, str]) -> None:
    html, md = rendered
    assert "<h2>Pareto fronts" in html and 'id="pareto-' in html
    assert "## Pareto fronts" in md and "### Front: accuracy against peak memory (MB)" in md
    front_rows = md.split("### Front: accuracy against peak memory (MB)")[1].split("###")[0]
    assert front_rows.count("| lora |") + front_rows.count("| full |") >= 1
    assert "| base |" not in front_rows


# -- sensitivity: learning-rate curves, heat maps, loss bands -----------------------------


def _grid_runs() -> tuple[list[dict], list[dict]]:
    """lora at two lrs (and two r at the first), full at one lr, base; two seeds each."""
    table = [
        ("lora", {"r": 4, "training.lr": 1e-3}, (0.50, 0.54)),
        ("lora", {"r": 8, "training.lr": 1e-3}, (0.60, 0.64)),  # the best at 1e-3
        ("lora", {"r": 8, "training.lr": 1e-2}, (0.30, 0.32)),
        ("full", {"training.lr": 1e-3}, (0.70, 0.72)),
        ("base", {}, (0.05,)),
    ]
    runs, evals = [], []
    for method, params, values in table:
        lr = params.get("training.lr", 1e-3)
        for seed, value in enumerate(values):
            run = _run(method, seed, "exact_match", tokens_seen=1000.0)
            run["run_id"] = f"{method}-{seed}-{sorted(params.items())}"
            run["params"] = {**params, "seed": seed}
            run["config"]["training"] = {"lr": lr}
            run["config"]["method"] = {"name": method, "r": params.get("r", 0)}
            runs.append(run)
            evals.append({"run_id": run["run_id"], "metric": "exact_match", "value": value})
    return runs, evals


def test_lr_curves_take_the_best_config_at_each_rate() -> None:
    from ftsweep.report.viewmodel import build_view

    runs, evals = _grid_runs()
    view = build_view("x", runs, evals, [], [])
    curves = {c.method: c for c in view.lr_curves}
    assert set(curves) == {"lora", "full"}  # base trains nothing: no learning rate
    lora = curves["lora"]
    assert [p.lr for p in lora.points] == [1e-3, 1e-2]
    assert lora.points[0].config == "r=8, training.lr=0.001"
    assert lora.points[0].stat.mean == pytest.approx(0.62) and lora.points[0].stat.n == 2
    assert lora.points[0].stat.low is not None and lora.points[0].stat.low >= 0.0


def test_heat_maps_cover_every_varied_hyperparameter() -> None:
    from ftsweep.report.viewmodel import build_view

    runs, evals = _grid_runs()
    maps = {h.param: h for h in build_view("x", runs, evals, [], []).heat_maps}
    assert set(maps) == {"r", "training.lr"}
    lr = maps["training.lr"]
    assert lr.values == ("0.001", "0.01") and lr.methods == ("full", "lora")
    full, lora = lr.cells["full"], lr.cells["lora"]
    assert full[1].stat.n == 0 and full[1].shade == 0.0  # full never ran at 1e-2
    assert full[0].shade == 1.0 and lora[1].shade == 0.0  # best and worst of the map
    assert lora[0].stat.n == 4 and lora[0].stat.mean == pytest.approx(0.57)
    r = maps["r"]
    assert r.values == ("4", "8") and r.methods == ("lora",)


def test_heat_map_shade_follows_the_metrics_direction() -> None:
    from ftsweep.report.sensitivity import heat_maps

    runs = [
        {"run_id": "a", "method": "m", "params": {"x": 1}},
        {"run_id": "b", "method": "m", "params": {"x": 2}},
        {"run_id": "c", "method": "m", "params": {"y": 1}},  # one value only: no map
    ]
    per_run = {"a": {"eval_loss": 1.0}, "b": {"eval_loss": 3.0}, "c": {"eval_loss": 2.0}}
    (lower,) = heat_maps(runs, per_run, "eval_loss", higher=False)
    assert [c.shade for c in lower.cells["m"]] == [1.0, 0.0]  # the lower loss is darker
    (higher,) = heat_maps(runs, per_run, "eval_loss", higher=True)
    assert [c.shade for c in higher.cells["m"]] == [0.0, 1.0]


def test_loss_curves_carry_a_band_over_seeds() -> None:
    from ftsweep.report.viewmodel import build_view

    runs, evals = _grid_runs()
    curve_rows = [
        {"run_id": r["run_id"], "name": "loss", "step": step, "value": 2.0 - step / 10 + seed}
        for r in runs
        for seed in (r["params"]["seed"],)
        for step in (1, 2)
    ]
    view = build_view("x", runs, evals, curve_rows, [])
    loss = next(c for c in view.curves if c.metric == "loss")
    series = {s.method: s for s in loss.series}
    full = series["full"]
    assert full.steps == (1, 2) and full.low == (1.9, 1.8) and full.high == (2.9, 2.8)
    assert full.values == pytest.approx((2.4, 2.3))
    assert series["base"].low == () and series["base"].high == ()  # one seed: no band


def test_sensitivity_section_renders(rendered: tuple[str, str]) -> None:
    html, md = rendered
    assert "<h2>Sensitivity</h2>" in html and "## Sensitivity" in md
    # the fabricated runs vary r (lora) and lr (full): one table each, in both reports
    assert "| r | 8 | 16 |" in md and "| lr | 1e-05 | 0.0001 |" in md
    assert "rgba(26, 127, 55," in html  # heat map shading
    assert "No trained configuration records a learning rate." in md  # flat fabricated configs


# -- fairness warnings --------------------------------------------------------------------


def test_warns_when_methods_saw_different_numbers_of_tokens() -> None:
    from ftsweep.report.viewmodel import build_view

    runs, evals = _grid_runs()
    for r in runs:
        if r["method"] == "full":
            r["tokens_seen"] = 1200.0  # lora saw 1000, base 0 (it trains nothing)
    kinds = {w.kind: w.message for w in build_view("x", runs, evals, [], []).warnings}
    assert kinds["tokens"].startswith("the best configs trained on different numbers of tokens")
    assert "full 1,200, lora 1,000" in kinds["tokens"] and "1.20×" in kinds["tokens"]
    for r in runs:
        if r["method"] == "full":
            r["tokens_seen"] = 1030.0  # within the 5% that seeds' shuffles explain
    assert "tokens" not in {w.kind for w in build_view("x", runs, evals, [], []).warnings}


def test_warns_when_a_method_got_one_learning_rate_and_others_several() -> None:
    from ftsweep.report.viewmodel import build_view

    runs, evals = _grid_runs()
    (warning,) = [w for w in build_view("x", runs, evals, [], []).warnings]
    assert warning.kind == "learning rate"
    assert warning.message.startswith("full tried at one learning rate only")
    assert "(lora 2)" in warning.message and "base" not in warning.message
    tuned = [r for r in runs if not (r["method"] == "lora" and r["params"].get("r") == 8)]
    assert build_view("x", tuned, evals, [], []).warnings == ()  # one lr each: fair


def test_warns_about_settings_that_differ_but_are_not_shown() -> None:
    from ftsweep.report.fairness import fairness_warnings

    runs, _ = _grid_runs()
    runs = [r for r in runs if r["method"] != "full"]  # no learning-rate warning
    runs[0]["config"]["training"]["weight_decay"] = 0.1  # hidden, global
    for r in runs:
        r["config"]["training"].setdefault("weight_decay", 0.0)
    runs[1]["config"]["method"]["dropout"] = 0.1  # hidden, within lora
    messages = [w.message for w in fairness_warnings(runs, [])]
    assert len(messages) == 2, messages
    assert messages[0].startswith("method.dropout differs between lora runs")
    assert messages[1].startswith("training.weight_decay differs but is not a varied value")
    assert "0.1 (lora)" in messages[1] and "0.0 (base, lora)" in messages[1]
    # method.r differs between lora and base by design, and r/training.lr are shown


def test_fairness_section_comes_before_the_rankings(rendered: tuple[str, str]) -> None:
    html, md = rendered
    assert md.index("## Fairness warnings") < md.index("## Decisions") < md.index("## Leaderboard")
    assert html.index("<h2>Fairness warnings</h2>") < html.index("<h2>Decisions</h2>")


def test_a_config_fits_the_budget_only_if_every_seed_does() -> None:
    table = [
        ("full", (0.9, 0.9), 0.0, 10.0, 1.0, 1),
        ("lora", (0.5, 0.5), 0.0, 10.0, 1.0, 1),
    ]
    peaks = {"full-0": 800.0, "full-1": 1100.0, "lora-0": 900.0, "lora-1": 950.0}
    # rebuild with per-seed peaks: full's mean (950) fits, its second seed does not
    from ftsweep.report.viewmodel import build_view

    runs, evals = [], []
    for method, values, *_ in table:
        for seed, value in enumerate(values):
            rid = f"{method}-{seed}"
            runs.append(_run(method, seed, "exact_match", peak_memory_mb=peaks[rid]))
            evals.append({"run_id": rid, "metric": "exact_match", "value": value})
    view = build_view("x", runs, evals, [], [], memory_budget_mb=1000.0)
    card = view.cards[1]
    assert card.label == "lora" and card.evidence.endswith("highest seed 950 MB")


def test_a_searched_hyperparameter_gets_a_note_not_a_huge_grid() -> None:
    from ftsweep.report.render import make_env, render_template
    from ftsweep.report.sensitivity import MAX_HEAT_VALUES, heat_maps
    from ftsweep.report.viewmodel import build_view

    runs, evals = [], []
    for i in range(MAX_HEAT_VALUES + 1):
        run = _run("lora", 0, "exact_match")
        run["run_id"], run["params"] = f"t{i}", {"training.lr": 1e-4 * (i + 1), "seed": 0}
        runs.append(run)
        evals.append({"run_id": f"t{i}", "metric": "exact_match", "value": 0.5})
    per_run = {e["run_id"]: {"exact_match": e["value"]} for e in evals}
    (heat,) = heat_maps(runs, per_run, "exact_match", True)
    assert heat.values == () and heat.note.startswith(f"{MAX_HEAT_VALUES + 1} distinct values")
    view = build_view("x", runs, evals, [], [])
    md = render_template(make_env(), "report.md", view=view).replace("\\", "")
    html = render_template(make_env(), "index.html", view=view, svgs={})
    assert f"**training.lr**: {MAX_HEAT_VALUES + 1} distinct values" in md
    assert f"<b>training.lr</b>: {MAX_HEAT_VALUES + 1} distinct values" in html


def test_counts_stay_exact_in_the_cost_table() -> None:
    from ftsweep.report.numbers import fmt_num

    table = [("full", (0.9, 0.8), 1.0, 1.0, 1.0, 1_115_264)]
    row = _card_view(table=table).leaderboard[0]
    assert fmt_num(row.trainable_params.mean) == "1,115,264"
    assert fmt_num(row.tokens_seen.mean) == "1,000"
    uneven = [("full", (0.9, 0.8), 1.0, 1.0, 1.0, 1)]
    runs_mean = _card_view(table=uneven).leaderboard[0].peak_memory_mb.mean
    assert isinstance(runs_mean, float)  # a measurement keeps its 3 digits


def test_new_sections_escape_user_values() -> None:
    from ftsweep.report.render import make_env, render_template
    from ftsweep.report.viewmodel import build_view

    evil = "<img src=x onerror=alert(1)>"
    runs, evals = [], []
    for i, value in enumerate((evil, "plain")):
        run = _run("lora", 0, "exact_match")
        run["run_id"], run["params"] = f"e{i}", {"prompt": value, "seed": 0}
        run["config"]["hidden"] = f"{evil}{i}"  # a setting the report does not show
        runs.append(run)
        evals.append({"run_id": f"e{i}", "metric": "exact_match", "value": 0.5})
    view = build_view("x", runs, evals, [], [])
    assert view.heat_maps and view.warnings
    html = render_template(make_env(), "index.html", view=view, svgs={})
    md = render_template(make_env(), "report.md", view=view)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in md and "&lt;img" in md
