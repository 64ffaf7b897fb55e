"""The shortcuts a large report takes for speed give the answers the slow ways gave:
facts about built-in metrics and methods (report/registry_facts.py) match the
registries, the report's import path stays free of heavy libraries, the sign-flip test
makes the draws it made before, per-example means are shared, and compiled templates
are reused only for the same source."""

from __future__ import annotations

import subprocess
import sys

from ftsweep.report.registry_facts import (
    BUILTIN_FIXED_METHODS,
    BUILTIN_METRICS,
    MetricFacts,
    metric_aggregate,
    metric_bounds,
    metric_direction,
    trains_nothing,
)


def _builtin_evaluators() -> list[type]:
    from ftsweep.evaluators import EVALUATORS

    return [c for c in EVALUATORS.values() if c.__module__.startswith("ftsweep.evaluators.")]


def test_metric_table_equals_the_evaluator_registry() -> None:
    declared = {
        metric: MetricFacts(
            cls.name,
            cls.metrics[metric],
            tuple(cls.bounds.get(metric, (None, None))),
            cls.aggregate,
        )
        for cls in _builtin_evaluators()
        for metric in cls.metrics
    }
    # a mismatch names the metric: write the evaluator's declaration into registry_facts
    assert {m: f for m, f in BUILTIN_METRICS.items() if declared.get(m) != f} == {}
    assert sorted(set(declared) - set(BUILTIN_METRICS)) == []


def test_fixed_methods_equal_the_method_registry() -> None:
    from ftsweep.methods import METHODS

    builtin = {n for n, c in METHODS.items() if c.__module__.startswith("ftsweep.methods.")}
    assert {n for n in builtin if not METHODS[n].trains} == BUILTIN_FIXED_METHODS
    assert trains_nothing("base") and not trains_nothing("lora") and not trains_nothing(None)


def test_a_loaded_registry_answers_first(monkeypatch) -> None:
    from ftsweep.evaluators import EVALUATORS, EvalScores, Evaluator

    class Toy(Evaluator):
        name = "toy_facts"
        needs_generation = False
        metrics = {"toy_score": False}
        bounds = {"toy_score": (0.0, 5.0)}

        def score(self, examples, predictions):  # pragma: no cover - never scored here
            return EvalScores({}, [])

    monkeypatch.setitem(EVALUATORS, "toy_facts", Toy)
    assert metric_direction("toy_score") is False and metric_bounds("toy_score") == (0.0, 5.0)
    assert metric_aggregate("toy_score") == "mean"
    assert metric_aggregate("bleu") == "corpus" and metric_bounds("perplexity") == (1.0, None)
    # a cost, not an evaluator's metric
    assert metric_direction("peak_memory_mb") is None and metric_aggregate("peak_memory_mb") is None
    assert metric_bounds("peak_memory_mb") == (None, None)


def test_report_path_imports_no_heavy_library() -> None:
    """Facts, statistics and figures of a report without importing the evaluators,
    methods, matplotlib, scipy or sacrebleu (each costs tenths of a second per report)."""
    code = """
import sys
from ftsweep.report import render_report
from ftsweep.report.plots import lr_svg
from ftsweep.report.registry_facts import trains_nothing
from ftsweep.report.rows import metric_range
from ftsweep.report.sensitivity import LrCurve, LrPoint
from ftsweep.report.stats import summarize
from ftsweep.report.viewmodel import aggregation, higher_is_better
assert metric_range("bleu") == (0.0, 100.0) and aggregation("bleu") == "corpus"
assert higher_is_better("exact_match") and not higher_is_better("eval_loss")
assert not trains_nothing("lora") and trains_nothing("base")
s = summarize([0.1 * (i % 7) for i in range(500)])  # df 499: past the t table
svg = lr_svg((LrCurve("lora", (LrPoint(1e-4, s, "c"), LrPoint(1e-3, s, "d"))),), "m", "lr")
assert svg.count("<svg") == 1
heavy = ("matplotlib", "scipy", "sacrebleu", "ftsweep.evaluators", "ftsweep.methods", "pydantic")
print(sorted(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_sign_flip_p_is_the_reference_computation() -> None:
    """The same resamples and p-value as drawing ±1 floats with rng.choice (the former code)."""
    import numpy as np

    from ftsweep.report.stats import N_RESAMPLES, SEED, paired_sign_flip_p

    d = np.random.default_rng(7).normal(0.05, 1.0, 150)
    rng = np.random.default_rng(SEED)
    observed, hits = abs(d.mean()), 0
    for _ in range(N_RESAMPLES // 1000):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(1000, len(d)))
        hits += int(np.sum(np.abs((signs * d).mean(axis=1)) >= observed - 1e-12))
    assert paired_sign_flip_p(list(d)) == (hits + 1) / (N_RESAMPLES + 1)


def test_per_example_means_are_shared_and_equal_to_a_plain_pass() -> None:
    from ftsweep.report.compare import group_by_run, per_example

    rows = [
        {"run_id": rid, "example_id": ex, "value": float((i * 7 + ex) % 3 == 0)}
        for i, rid in enumerate(["r2", "r1", "r3"])
        for ex in range(5)
    ]
    grouped = group_by_run(rows)
    first = per_example(grouped, ("r1", "r2"))
    assert per_example(grouped, ["r2", "r1", "r1"]) is first  # the same runs: asked once
    plain = {
        str(ex): sum(r["value"] for r in rows if r["example_id"] == ex and r["run_id"] != "r3") / 2
        for ex in range(5)
    }
    assert first == plain == per_example(rows, ("r1", "r2"))
    assert group_by_run(grouped) is grouped


def test_compiled_templates_are_reused_only_for_the_same_source(tmp_path) -> None:
    from ftsweep.report.render import make_env, render_template

    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "t.html").write_text("{{ x }} one", encoding="utf-8")
    cache = tmp_path / "cache"
    assert render_template(make_env(mine, cache), "t.html", x="<b>") == "&lt;b&gt; one"
    assert len(list(cache.iterdir())) == 1 and oct(cache.stat().st_mode)[-3:] == "700"
    (mine / "t.html").write_text("{{ x }} two", encoding="utf-8")  # edited: recompiled
    assert render_template(make_env(mine, cache), "t.html", x="<b>") == "&lt;b&gt; two"
    assert render_template(make_env(mine, cache), "t.html", x="y") == "y two"
