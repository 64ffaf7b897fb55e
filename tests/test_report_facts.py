"""The report's facts about built-in metrics and methods (report/registry_facts.py) match
the registries, and a report's import path stays free of heavy libraries."""

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
