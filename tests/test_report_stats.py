"""The report's numbers: one format rule, and statistics checked against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from ftsweep.report.compare import MCNEMAR, PERMUTATION, compare
from ftsweep.report.numbers import fmt_interval, fmt_num, fmt_p
from ftsweep.report.stats import Stat, bootstrap_mean, holm, mcnemar_exact_p, summarize
from ftsweep.report.viewmodel import build_view

# -- formatting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,text",
    [
        (0, "0"),
        (0.0, "0"),
        (-0.0, "0"),
        (-1.23456, "-1.23"),
        (1e-5, "1.00×10⁻⁵"),
        (-2.5e-7, "-2.50×10⁻⁷"),
        (9.9996e-4, "1.00×10⁻³"),
        (0.001, "0.00100"),
        (74950.0, "75,000"),  # was "7.495e+04"
        (5238.4, "5,240"),
        (36.92, "36.9"),
        (0.17414, "0.174"),
        (0.5, "0.500"),
        (0.9996, "1.00"),
        (999.6, "1,000"),
        (1234567, "1,234,567"),  # ints are counts: exact
        (float("nan"), "—"),
        (float("inf"), "—"),
        (None, "—"),
    ],
)
def test_fmt_num(value: float | int | None, text: str) -> None:
    assert fmt_num(value) == text


def test_fmt_interval_and_p() -> None:
    assert fmt_interval(Stat(5238.0, 36.92, 3, 5146.3, 5329.7)) == "5,240 [5,150, 5,330] (n=3)"
    assert fmt_interval(Stat(0.5, None, 1)) == "0.500 (n=1)"
    assert fmt_interval(Stat(None, None, 0)) == "—"
    assert fmt_p(0.0004) == "< 0.001" and fmt_p(0.04567) == "0.0457" and fmt_p(None) == "—"


# -- statistics against scipy -------------------------------------------------------------


def test_t_interval_matches_scipy() -> None:
    xs = [0.61, 0.64, 0.58, 0.66]
    s = summarize(xs)
    low, high = sps.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=sps.sem(xs))
    assert s.n == 4 and s.low == pytest.approx(low) and s.high == pytest.approx(high)
    one = summarize([0.5, None, float("nan")])
    assert (one.mean, one.n, one.low, one.high) == (0.5, 1, None, None)


def test_holm_matches_a_hand_worked_family() -> None:
    # sorted 0.01, 0.02, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.04, 0.06, 0.06, 0.04 → monotone
    assert holm([0.04, 0.01, 0.03, 0.02, None]) == pytest.approx([0.06, 0.04, 0.06, 0.06, None])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_mcnemar_exact_matches_scipy_binomtest() -> None:
    a = [1.0] * 12 + [0.0] * 3 + [1.0] * 20 + [0.0] * 5
    b = [0.0] * 12 + [1.0] * 3 + [1.0] * 20 + [0.0] * 5
    assert mcnemar_exact_p(a, b) == pytest.approx(sps.binomtest(12, 15, 0.5).pvalue)
    assert mcnemar_exact_p(a, a) == 1.0
    assert mcnemar_exact_p([], []) is None


def test_bootstrap_is_deterministic_and_close_to_the_normal_interval() -> None:
    rng = np.random.default_rng(3)
    xs = list(rng.normal(10.0, 2.0, size=400))
    s = bootstrap_mean(xs)
    assert s == bootstrap_mean(xs)  # same seed, same interval
    half = 1.96 * np.std(xs, ddof=1) / math.sqrt(len(xs))
    assert s.low == pytest.approx(np.mean(xs) - half, abs=0.05)
    assert s.high == pytest.approx(np.mean(xs) + half, abs=0.05)
    assert bootstrap_mean(xs, seed=1) != s  # the seed is what fixes it
    assert bootstrap_mean([1.0]).low is None and bootstrap_mean([]).n == 0


# -- verdicts on known cases --------------------------------------------------------------


def _runs(method: str, seeds: int, fingerprints: dict[str, str] | None = None) -> list[dict]:
    return [
        {
            "run_id": f"{method}-{s}-{sorted((fingerprints or {}).items())}",
            "method": method,
            "status": "complete",
            "params": {"seed": s},
            "config": {"eval": {"primary_metric": "accuracy", "split": "val"}},
            "fingerprints": fingerprints or {"data.train": "d1", "model": "m1"},
            "provenance": {},
            "trainable_params": 10,
            "trainable_pct": 1.0,
            "peak_memory_mb": 100.0,
            "wall_time_s": 10.0,
            "tokens_per_s": 1000.0,
            "failure_cause": None,
            "failure_log_tail": None,
        }
        for s in range(seeds)
    ]


def _scores(runs: list[dict], skill: float, seed: int) -> tuple[list[dict], list[dict]]:
    """0/1 scores on 200 examples; per seed a different draw at the same skill."""
    evals, examples = [], []
    for k, run in enumerate(runs):
        rng = np.random.default_rng(seed * 100 + k)
        values = (rng.random(200) < skill).astype(float)
        evals.append({"run_id": run["run_id"], "metric": "accuracy", "value": values.mean()})
        examples += [
            {"run_id": run["run_id"], "example_id": f"ex{i}", "value": v}
            for i, v in enumerate(values)
        ]
    return evals, examples


def _view(skills: dict[str, float]):
    runs, evals, examples = [], [], []
    for j, (method, skill) in enumerate(skills.items()):
        rs = _runs(method, 3)
        ev, ex = _scores(rs, skill, j)
        runs += rs
        evals += ev
        examples += ex
    return build_view("x", runs, evals, [], examples)


def test_two_identical_methods_show_no_detectable_difference() -> None:
    view = _view({"a": 0.6, "b": 0.6})
    (pair,) = view.pairs
    assert pair.test == PERMUTATION  # seed-averaged 0/1 scores are no longer 0/1
    assert pair.better is None
    assert pair.verdict.startswith("no detectable difference at n = 200 examples, 3 seeds")


def test_a_clearly_better_method_beats_the_other() -> None:
    view = _view({"weak": 0.3, "strong": 0.9})
    (pair,) = view.pairs
    assert pair.p_holm is not None and pair.p_holm < 0.001 and pair.intervals_separate
    assert (pair.better, pair.verdict) == ("strong", "strong beats weak")
    assert view.leaderboard[0].primary_examples.n == 200
    assert view.leaderboard[0].primary.n == 3


def test_single_seed_binary_scores_use_mcnemar() -> None:
    runs = _runs("a", 1) + _runs("b", 1)
    evals, examples = _scores(runs, 0.5, 7)
    (pair,) = compare(build_view("x", runs, evals, [], examples).leaderboard, examples, True)
    assert pair.test == MCNEMAR and pair.better is None  # one seed: never a claim


def test_holm_applies_across_the_whole_table() -> None:
    view = _view({"a": 0.5, "b": 0.55, "c": 0.6})
    raw = [p.p_value for p in view.pairs]
    assert [p.p_holm for p in view.pairs] == pytest.approx(holm(raw))


# -- inputs are never pooled as seeds (issue 8, item 10) ----------------------------------


def test_runs_on_different_data_are_separate_rows_not_seeds() -> None:
    runs = []
    for data in ("d1", "d2", "d3"):
        runs += _runs("lora", 1, {"data.train": data, "model": "m1"})
    evals = [{"run_id": r["run_id"], "metric": "accuracy", "value": 0.5} for r in runs]
    view = build_view("x", runs, evals, [], [])
    assert len(view.leaderboard) == 3 and all(r.primary.n == 1 for r in view.leaderboard)
    assert [r.label for r in view.leaderboard] == [
        "lora (inputs 1)",
        "lora (inputs 2)",
        "lora (inputs 3)",
    ]
    assert len(view.inputs) == 3 and view.inputs[0].differs_in == ("data.train",)
    same = build_view("x", _runs("lora", 3), evals[:0], [], [])
    assert len(same.inputs) == 1 and same.leaderboard[0].label == "lora"


def test_changed_inputs_are_said_in_both_reports() -> None:
    from ftsweep.report.render import make_env, render_template

    runs = _runs("lora", 1, {"data.train": "d1", "model": "m1"})
    runs += _runs("lora", 1, {"data.train": "d2", "model": "m1"})
    evals = [{"run_id": r["run_id"], "metric": "accuracy", "value": 0.5} for r in runs]
    view = build_view("x", runs, evals, [], [])
    env = make_env()
    html = render_template(env, "index.html", view=view, svgs={})
    md = render_template(env, "report.md", view=view)
    assert "inputs changed" in html and "inputs changed" in md
    assert "data.train d2" in html and "data.train d2" in md.replace("\\", "")


# -- corpus metrics: statistics agree with the corpus score (BLEU, chrF) ------------------

HYPS = ["the cat sat on the mat", "a dog barked", "hello", "it rains today in paris"]
REFS = ["the cat sat on the mat", "the dog barked loudly", "hello there", "today it rains in paris"]


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_corpus_evaluators_stats_sum_to_the_corpus_score(name: str) -> None:
    from ftsweep.evaluators import EvalExample, build_evaluator, corpus_evaluator

    evaluator = build_evaluator(name, {})
    assert evaluator.aggregate == "corpus"
    examples = [
        EvalExample(str(i), "", r, h) for i, (h, r) in enumerate(zip(HYPS, REFS, strict=True))
    ]
    stats = np.asarray(evaluator.example_stats(HYPS, REFS))
    assert evaluator.score_stats(list(stats.sum(axis=0))) == pytest.approx(
        evaluator.score(examples).aggregate[name]
    )
    assert corpus_evaluator(name) is not None and corpus_evaluator("exact_match") is None


def _bleu_view(hyps_by_method: dict[str, list[str]], refs: list[str]):
    from ftsweep.report.corpus import corpus_stats

    runs, evals, examples, texts = [], [], [], []
    for method, hyps in hyps_by_method.items():
        for run in _runs(method, 3):
            run["config"] = {"eval": {"primary_metric": "bleu", "split": "val"}}
            runs.append(run)
            evals.append({"run_id": run["run_id"], "metric": "bleu", "value": 0.0})
            for i, (h, r) in enumerate(zip(hyps, refs, strict=True)):
                examples.append({"run_id": run["run_id"], "example_id": f"e{i}", "value": 100.0})
                texts.append(
                    {
                        "run_id": run["run_id"],
                        "example_id": f"e{i}",
                        "prediction": h,
                        "reference": r,
                    }
                )
    corpus = corpus_stats("bleu", {}, texts)
    assert corpus is not None
    return build_view("x", runs, evals, [], examples, corpus), corpus


def test_bleu_over_examples_is_the_corpus_score_not_the_sentence_mean() -> None:
    import sacrebleu

    refs = [f"ref {i} w{i % 5} x{i % 3}" for i in range(40)]
    view, _ = _bleu_view({"a": refs[:1] + ["x"] * 39}, refs)
    cell = view.leaderboard[0].primary_examples
    hyps = refs[:1] + ["x"] * 39
    assert cell.mean == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert cell.mean != 100.0  # what the (fabricated) sentence scores would average to


def test_paired_corpus_bootstrap_known_cases() -> None:
    from ftsweep.report.compare import CORPUS_BOOTSTRAP

    refs = [f"the {w} cat sat on mat number {i}" for i, w in enumerate(["red", "big"] * 20)]
    garbled = [" ".join(reversed(r.split())) for r in refs]
    view, corpus = _bleu_view({"good": refs, "same": refs, "bad": garbled}, refs)
    by_pair = {(p.a, p.b): p for p in view.pairs}
    same = by_pair[("good", "same")] if ("good", "same") in by_pair else by_pair[("same", "good")]
    assert same.test == CORPUS_BOOTSTRAP and same.p_value == 1.0 and same.better is None
    beaten = [p for p in view.pairs if "bad" in (p.a, p.b)]
    assert all(p.p_value is not None and p.p_value < 0.01 for p in beaten)
    # the fabricated aggregates are all 0.0, so the seed intervals overlap: no claim
    assert all(p.better is None for p in beaten)
    stats_a = np.stack(list(corpus.for_runs(view.leaderboard[0].run_ids).values()))
    from ftsweep.report.stats import corpus_bootstrap

    assert corpus_bootstrap(stats_a, corpus.score) == corpus_bootstrap(stats_a, corpus.score)


def test_the_leaderboard_says_when_a_metric_is_weighted() -> None:
    from ftsweep.report.render import make_env, render_template

    runs = _runs("lora", 2)
    for r in runs:
        r["config"] = {"eval": {"primary_metric": "eval_loss", "split": "val"}}
    evals = [{"run_id": r["run_id"], "metric": "eval_loss", "value": 1.0} for r in runs]
    view = build_view("x", runs, evals, [], [])
    assert view.primary_aggregate == "weighted"
    md = render_template(make_env(), "report.md", view=view)
    assert "unweighted mean of per-example values" in md


def test_corpus_statistics_come_from_the_stores_texts() -> None:
    import duckdb
    import sacrebleu

    from ftsweep.report import _corpus

    con = duckdb.connect()
    con.execute("CREATE TABLE runs (run_id VARCHAR, experiment VARCHAR, status VARCHAR)")
    con.execute(
        "CREATE TABLE eval_examples (run_id VARCHAR, split VARCHAR, example_id VARCHAR,"
        " metric VARCHAR, value DOUBLE, prediction VARCHAR, reference VARCHAR)"
    )
    con.execute("INSERT INTO runs VALUES ('r1', 'x', 'complete')")
    for i, (h, r) in enumerate(zip(HYPS, REFS, strict=True)):
        con.execute(
            "INSERT INTO eval_examples VALUES ('r1', 'val', ?, 'bleu', 1.0, ?, ?)", [f"e{i}", h, r]
        )
    runs = [{"config": {"eval": {"evaluator_params": {"bleu": {"lowercase": True}}}}}]
    corpus = _corpus(con, "x", runs, "bleu", "val")
    assert corpus is not None
    totals = np.sum(list(corpus.for_runs(["r1"]).values()), axis=0)
    expected = sacrebleu.corpus_bleu(HYPS, [REFS], lowercase=True).score
    assert corpus.score(totals) == pytest.approx(expected)
    assert _corpus(con, "x", runs, "accuracy", "val") is None  # a mean metric needs no texts


# -- a fixed reference (the untrained base model) has no seed interval ---------------------


def _with_base(skills: dict[str, float], base_skill: float):
    runs, evals, examples = [], [], []
    for j, (method, skill) in enumerate(skills.items()):
        rs = _runs(method, 3)
        ev, ex = _scores(rs, skill, j)
        runs, evals, examples = runs + rs, evals + ev, examples + ex
    base = _runs("base", 1)  # a method that trains nothing: one run, one value
    ev, ex = _scores(base, base_skill, 99)
    return build_view("x", runs + base, evals + ev, [], examples + ex)


def test_a_trained_method_beats_the_untrained_base_model() -> None:
    view = _with_base({"lora": 0.9}, 0.1)
    base_row = next(r for r in view.leaderboard if r.method == "base")
    assert base_row.fixed and base_row.primary.n == 1 and base_row.primary.low is None
    (pair,) = view.pairs
    assert pair.p_holm is not None and pair.p_holm < 0.001
    assert pair.intervals_separate is True
    assert pair.seed_check == "lora's seed interval vs base's fixed value"
    assert pair.better == "lora"
    assert pair.verdict == "lora beats base (lora's seed interval vs base's fixed value)"


def test_base_value_inside_the_seed_interval_is_no_detectable_difference() -> None:
    view = _with_base({"lora": 0.5}, 0.5)
    (pair,) = view.pairs
    assert pair.better is None and pair.intervals_separate is False
    assert pair.verdict.startswith("no detectable difference at n = 200 examples, 1–3 seeds")
    assert "the fixed value lies in the seed interval" in pair.verdict


def test_a_one_seed_trained_method_is_not_a_fixed_reference() -> None:
    runs = _runs("lora", 1) + _runs("base", 1)
    evals, examples = _scores(runs[:1], 0.95, 1)
    ev, ex = _scores(runs[1:], 0.05, 2)
    view = build_view("x", runs, evals + ev, [], examples + ex)
    (pair,) = view.pairs
    assert pair.p_holm is not None and pair.p_holm < 0.001
    assert pair.intervals_separate is None and pair.better is None  # lora's one seed: no claim


# -- intervals stay inside the range a metric can take ------------------------------------


def test_intervals_of_bounded_values_are_clipped_and_marked() -> None:
    raw = summarize([0.99, 0.90])  # t = 12.7 at 1 degree of freedom: far past 1
    assert raw.high is not None and raw.high > 1 and not raw.clipped
    cut = summarize([0.99, 0.90], (0.0, 1.0))
    assert cut.high == 1.0 and cut.low == raw.low and cut.clipped
    assert fmt_interval(cut).endswith("]‡ (n=2)")
    inside = summarize([0.5, 0.52, 0.51], (0.0, 1.0))
    assert not inside.clipped and fmt_interval(inside).count("‡") == 0
    low = summarize([0.01, 0.2], (0.0, None))
    assert low.low == 0.0 and low.clipped and low.high == summarize([0.01, 0.2]).high


def test_evaluators_declare_their_ranges_and_the_report_uses_them() -> None:
    from ftsweep.evaluators import metric_bounds

    assert metric_bounds("exact_match") == (0.0, 1.0)
    assert metric_bounds("bleu") == (0.0, 100.0) and metric_bounds("chrf") == (0.0, 100.0)
    assert metric_bounds("eval_loss") == (0.0, None) and metric_bounds("unknown") == (None, None)
    for rate in ("pass@1", "pass@3", "majority_vote", "rouge_l", "token_f1"):
        assert metric_bounds(rate) == (0.0, 1.0), rate
    runs = _runs("lora", 2)
    for r in runs:
        r["config"] = {"eval": {"primary_metric": "exact_match", "split": "val"}}
    evals = [
        {"run_id": r["run_id"], "metric": "exact_match", "value": v}
        for r, v in zip(runs, (0.99, 0.90), strict=True)
    ]
    row = build_view("x", runs, evals, [], []).leaderboard[0]
    assert row.primary.high == 1.0 and row.primary.clipped
    assert row.peak_memory_mb.low is not None and row.peak_memory_mb.low >= 0


def test_register_refuses_bounds_of_an_unknown_metric() -> None:
    from ftsweep.evaluators import EvalScores, Evaluator
    from ftsweep.evaluators.registry import register

    class Bad(Evaluator):
        name = "bad_bounds"
        metrics = {"m": True}
        bounds = {"other": (0.0, 1.0)}

        def score(self, examples):  # type: ignore[no-untyped-def]
            return EvalScores({"m": 0.0}, [])

    with pytest.raises(ValueError, match="names 'other', not one of its metrics"):
        register(Bad)


def test_two_fixed_references_are_decided_by_the_paired_test_alone() -> None:
    runs = _runs("base", 1, {"data.train": "d1", "model": "m1"})
    runs += _runs("base", 1, {"data.train": "d1", "model": "m2"})  # another base model
    ev1, ex1 = _scores(runs[:1], 0.9, 1)
    ev2, ex2 = _scores(runs[1:], 0.1, 2)
    (pair,) = build_view("x", runs, ev1 + ev2, [], ex1 + ex2).pairs
    assert pair.seed_check == "both fixed references (no seed noise)"
    assert pair.better == "base (inputs 1)"
    assert pair.verdict.endswith("(both fixed references (no seed noise))")


def test_t_quantile_table_matches_scipy_bit_for_bit() -> None:
    from scipy import stats as sps

    from ftsweep.report.stats import _T_975, t_quantile

    for df in range(1, len(_T_975) + 1):  # the table
        assert t_quantile(df) == float(sps.t.ppf(0.975, df)), df
    # past the table, an expansion in 1/df: within 1e-9 (the report prints 3 digits)
    for df in (*range(len(_T_975) + 1, 400), 1_000, 10_000, 1_000_000):
        assert t_quantile(df) == pytest.approx(float(sps.t.ppf(0.975, df)), abs=1e-9), df
