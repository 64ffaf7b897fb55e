"""Evaluator plugins: registry, a shared conformance suite, then each evaluator."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sacrebleu
from pydantic import ValidationError

from ftsweep.evaluators import (
    EVALUATORS,
    EvalExample,
    EvalScores,
    Evaluator,
    UnknownEvaluatorError,
    build_evaluator,
    get_evaluator,
    metric_direction,
    register,
)
from ftsweep.evaluators.loss import Loss
from ftsweep.evaluators.sandbox import SandboxLimits, run_python
from ftsweep.evaluators.token_f1 import tokenize

# sacrebleu's documented example (README / corpus_bleu docstring).
HYPOTHESES = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
REFERENCE_STREAMS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]

ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]


def example(prediction: str, reference: str = "", example_id: str = "e0", **extra) -> EvalExample:
    return EvalExample(example_id, "prompt", reference, prediction, extra)


def text_examples(predictions: list[str], references: list[str]) -> list[EvalExample]:
    return [
        example(p, r, example_id=f"e{i}", tests=ADD_TESTS)
        for i, (p, r) in enumerate(zip(predictions, references, strict=True))
    ]


# --- registry -------------------------------------------------------------------


def test_importing_the_package_registers_every_builtin():
    assert set(EVALUATORS) >= {"loss", "exact_match", "token_f1", "bleu", "chrf", "pass_at_1"}
    assert get_evaluator("bleu").name == "bleu"


def test_unknown_name_lists_valid_names_and_suggests_the_closest():
    with pytest.raises(UnknownEvaluatorError) as caught:
        get_evaluator("exact_mach")
    message = str(caught.value)
    assert "did you mean 'exact_match'?" in message
    for name in EVALUATORS:
        assert name in message
    assert isinstance(caught.value, KeyError)  # existing `except KeyError` keeps working


def test_build_validates_params_all_at_once():
    assert build_evaluator("exact_match", {"case_sensitive": False}).params.case_sensitive is False
    with pytest.raises(ValidationError) as caught:
        build_evaluator("exact_match", {"case_sensitiv": False, "normalize_whitespace": "maybe"})
    assert caught.value.title == "exact_match params"
    assert caught.value.error_count() == 2


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("bleu", {"tokenize": "13b"}, "did you mean '13a'?"),
        ("bleu", {"smooth_method": "magic"}, "smooth_method"),
        ("chrf", {"char_order": 0}, "char_order"),
        ("pass_at_1", {"timeout_s": 0}, "timeout_s"),
        ("pass_at_1", {"workers": 0}, "workers"),
        ("loss", {"anything": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_params_raise_validation_error(name, params, fragment):
    with pytest.raises(ValidationError, match=fragment):
        build_evaluator(name, params)


def test_params_of_another_evaluator_are_refused():
    with pytest.raises(TypeError, match="needs"):
        get_evaluator("bleu")(get_evaluator("chrf").Params())


def test_metric_direction():
    assert metric_direction("eval_loss") is False
    assert metric_direction("perplexity") is False
    assert metric_direction("bleu") is True
    assert metric_direction("pass_at_1") is True
    assert metric_direction("pass@3") is True
    assert metric_direction("majority_vote") is True
    assert metric_direction("no_such_metric") is None


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    saved = dict(EVALUATORS)
    yield
    EVALUATORS.clear()
    EVALUATORS.update(saved)


def _evaluator_class(name: str, metrics: dict[str, bool]) -> type[Evaluator]:
    def score(self, examples):
        return EvalScores({}, [])

    return type("Probe", (Evaluator,), {"name": name, "metrics": metrics, "score": score})


def test_register_refuses_a_taken_name(scratch_registry):
    with pytest.raises(ValueError, match="taken"):
        register(_evaluator_class("bleu", {"probe": True}))


def test_register_refuses_a_metric_with_the_opposite_direction(scratch_registry):
    with pytest.raises(ValueError, match="eval_loss"):
        register(_evaluator_class("probe", {"eval_loss": True}))


def test_register_refuses_an_abstract_evaluator(scratch_registry):
    with pytest.raises(TypeError, match="abstract"):
        register(type("Half", (Evaluator,), {"name": "half", "metrics": {"x": True}}))


# --- conformance: every generation evaluator ------------------------------------

REQUIRED_PARAMS = {"forgetting": {"probe": "probe.jsonl"}}  # params without a default
# win_rate scores two answer sets (score_against), tested in tests/test_grpo.py.
GENERATION_EVALUATORS = sorted(
    n for n, c in EVALUATORS.items() if c.needs_generation and not getattr(c, "reads_start", False)
)


@pytest.mark.parametrize("name", sorted(EVALUATORS))
def test_declared_aggregation(name):
    """Every evaluator says how its corpus value relates to its per-example rows."""
    evaluator = build_evaluator(name, REQUIRED_PARAMS.get(name, {}))
    assert evaluator.aggregate in ("mean", "corpus", "weighted")
    if evaluator.aggregate == "corpus":  # its statistics must rebuild the corpus score
        hyps, refs = ["a b c d", "e f"], ["a b c d", "e g"]
        stats = evaluator.example_stats(hyps, refs)
        assert len(stats) == 2
        totals = [sum(col) for col in zip(*stats, strict=True)]
        scored = evaluator.score(text_examples(hyps, refs))
        assert evaluator.score_stats(totals) == pytest.approx(scored.aggregate[name])


@pytest.mark.parametrize("name", GENERATION_EVALUATORS)
def test_conformance(name):
    evaluator = build_evaluator(name, {})
    examples = text_examples(
        [ADD, "def add(a, b): return a - b", "", "the cat 猫"],
        [ADD, "def add(a, b): return a + b", "something", "the cat 猫"],
    )
    scores = evaluator.score(examples)
    assert set(scores.aggregate) == set(evaluator.metrics_for(1))  # one sample each
    assert set(evaluator.metrics_for(1)) <= set(evaluator.metrics)
    per_metric = sorted({metric for _, metric, _ in scores.per_example})
    assert set(per_metric) <= set(evaluator.metrics)
    for metric in per_metric:
        ids = [i for i, m, _ in scores.per_example if m == metric]
        assert ids == [e.example_id for e in examples]  # complete, in input order
    assert all(math.isfinite(v) for _, _, v in scores.per_example)
    assert evaluator.score(examples) == scores  # deterministic


@pytest.mark.parametrize("name", GENERATION_EVALUATORS)
def test_conformance_bad_batches_raise_value_error(name):
    evaluator = build_evaluator(name, {})
    with pytest.raises(ValueError, match="no examples"):
        evaluator.score([])
    twice = [example(ADD, ADD, "same", tests=ADD_TESTS)] * 2
    with pytest.raises(ValueError, match="duplicate example ids: 'same'"):
        evaluator.score(twice)


# --- exact_match ----------------------------------------------------------------


def test_exact_match_defaults_strip_and_collapse_whitespace_but_keep_case():
    scores = build_evaluator("exact_match", {}).score(
        [
            example("  Paris\n", "Paris", "strip"),
            example("New   York", "New York", "inner"),
            example("paris", "Paris", "case"),
        ]
    )
    assert [v for _, _, v in scores.per_example] == [1.0, 1.0, 0.0]
    assert scores.aggregate["exact_match"] == pytest.approx(2 / 3)


def test_exact_match_params():
    strict_spaces = build_evaluator("exact_match", {"normalize_whitespace": False})
    assert strict_spaces.score([example("New  York", "New York")]).aggregate["exact_match"] == 0.0
    assert strict_spaces.score([example(" New York ", "New York")]).aggregate["exact_match"] == 1.0
    caseless = build_evaluator("exact_match", {"case_sensitive": False})
    assert caseless.score([example("STRASSE", "Straße")]).aggregate["exact_match"] == 1.0


# --- token_f1 -------------------------------------------------------------------


def test_token_f1_english_partial_overlap():
    # Normalised: [cat, sat, on, mat] vs [cat, sat, on, hat] -> P = R = 3/4.
    scores = build_evaluator("token_f1", {}).score(
        [example("The cat sat on the mat.", "A cat sat on a hat")]
    )
    assert scores.aggregate["token_f1"] == pytest.approx(0.75)


def test_token_f1_chinese_splits_characters():
    assert tokenize("我喜欢猫。") == ["我", "喜", "欢", "猫"]
    assert tokenize("GPT模型，很好!") == ["gpt", "模", "型", "很", "好"]
    # pred 4 chars, ref 6 chars, 4 shared: P = 1, R = 2/3 -> F1 = 0.8.
    scores = build_evaluator("token_f1", {}).score([example("我喜欢猫", "我喜欢狗和猫")])
    assert scores.aggregate["token_f1"] == pytest.approx(0.8)


def test_token_f1_follows_squad_on_punctuation_and_empty_answers():
    assert tokenize("Don't stop") == ["dont", "stop"]
    f1 = build_evaluator("token_f1", {})
    scores = f1.score([example("", "", "both"), example("", "x", "one"), example("a", "x", "art")])
    # Both empty: 1. One empty: 0. "a" is an article, so the prediction is empty: 0.
    assert [v for _, _, v in scores.per_example] == [1.0, 0.0, 0.0]


# --- bleu and chrf --------------------------------------------------------------


def test_sacrebleu_documented_example():
    assert round(sacrebleu.corpus_bleu(HYPOTHESES, REFERENCE_STREAMS).score, 2) == 48.53


@pytest.mark.parametrize("stream", [0, 1])
def test_bleu_equals_sacrebleu_with_one_reference(stream):
    references = REFERENCE_STREAMS[stream]
    scores = build_evaluator("bleu", {}).score(text_examples(HYPOTHESES, references))
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [references]).score
    assert scores.aggregate["bleu"] == pytest.approx(expected)
    sentence = [
        sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(HYPOTHESES, references, strict=True)
    ]
    assert [v for _, _, v in scores.per_example] == pytest.approx(sentence)


def test_bleu_chinese_tokenizer():
    hypotheses = ["今天天气很好。", "我喜欢吃苹果。"]
    references = ["今天的天气很好。", "我爱吃苹果。"]
    scores = build_evaluator("bleu", {"tokenize": "zh"}).score(
        text_examples(hypotheses, references)
    )
    expected = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="zh").score
    assert scores.aggregate["bleu"] == pytest.approx(expected)
    assert 0 < expected < 100


def test_chrf_equals_sacrebleu():
    references = REFERENCE_STREAMS[0]
    scores = build_evaluator("chrf", {}).score(text_examples(HYPOTHESES, references))
    expected = sacrebleu.corpus_chrf(HYPOTHESES, [references]).score
    assert scores.aggregate["chrf"] == pytest.approx(expected)
    sentence = [
        sacrebleu.sentence_chrf(h, [r]).score for h, r in zip(HYPOTHESES, references, strict=True)
    ]
    assert [v for _, _, v in scores.per_example] == pytest.approx(sentence)
    perfect = build_evaluator("chrf", {}).score(text_examples(references, references))
    assert perfect.aggregate["chrf"] == pytest.approx(100.0)


def test_chrf_plus_plus_differs_from_chrf():
    examples = text_examples(HYPOTHESES, REFERENCE_STREAMS[0])
    plus_plus = build_evaluator("chrf", {"word_order": 2}).score(examples).aggregate["chrf"]
    expected = sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCE_STREAMS[0]], word_order=2).score
    assert plus_plus == pytest.approx(expected)


# --- loss -----------------------------------------------------------------------


def test_loss_is_token_weighted_and_perplexity_is_its_exp():
    # Example means are 3.0 and 1.0 (unweighted mean 2.0); token-weighted: 6 / 4.
    scores = Loss.from_losses({"short": (3.0, 1), "long": (3.0, 3)})
    assert scores.aggregate["eval_loss"] == pytest.approx(1.5)
    assert scores.aggregate["perplexity"] == pytest.approx(math.exp(1.5))
    assert scores.per_example == [("short", "eval_loss", 3.0), ("long", "eval_loss", 1.0)]


def test_loss_edge_cases():
    assert Loss.from_losses({"a": (1e6, 1)}).aggregate["perplexity"] == math.inf
    assert math.isnan(Loss.from_losses({"a": (math.nan, 2)}).aggregate["eval_loss"])
    with pytest.raises(ValueError, match="n_tokens"):
        Loss.from_losses({"a": (1.0, 0)})
    with pytest.raises(ValueError, match="no example"):
        Loss.from_losses({})


def test_loss_score_points_to_from_losses():
    assert get_evaluator("loss").needs_generation is False
    with pytest.raises(TypeError, match="from_losses"):
        build_evaluator("loss", {}).score([example("x")])


# --- pass_at_1 and the sandbox --------------------------------------------------


def code_example(example_id: str, prediction: str, tests: list[str] = ADD_TESTS) -> EvalExample:
    return EvalExample(example_id, "prompt", ADD, prediction, {"tests": tests})


def test_pass_at_1_scores_a_mixed_batch():
    marker = Path(f"/tmp/PWNED_{uuid.uuid4().hex}")
    examples = [
        code_example("correct", ADD),
        code_example("wrong", "def add(a, b):\n    return a - b\n"),
        code_example("syntax", "def add(a, b)\n    return a + b\n"),
        code_example("shell", f'import os\nos.system("touch {marker}")\n' + ADD),
        code_example("early_exit", "import sys\n" + ADD + "sys.exit(0)\n"),
        code_example("writes_inside", ADD + 'open("scratch.txt", "w").write("ok")\n'),
    ]
    try:
        scores = build_evaluator("pass_at_1", {}).score(examples)
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)
    assert dict((i, v) for i, _, v in scores.per_example) == {
        "correct": 1.0,
        "wrong": 0.0,
        "syntax": 0.0,
        "shell": 0.0,
        "early_exit": 0.0,
        "writes_inside": 1.0,
    }
    assert scores.aggregate["pass_at_1"] == pytest.approx(2 / 6)


def test_pass_at_1_infinite_loop_is_killed_at_the_timeout():
    evaluator = build_evaluator("pass_at_1", {"timeout_s": 1})
    started = time.monotonic()
    scores = evaluator.score([code_example("loop", "while True:\n    pass\n")])
    assert scores.aggregate["pass_at_1"] == 0.0
    assert time.monotonic() - started < 1 + 3  # start-up and a loaded machine


def test_pass_at_1_memory_bomb_is_contained():
    bomb = "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n"
    result = run_python(bomb, limits=SandboxLimits(timeout_s=10, memory_mb=128))
    assert not result.passed
    assert not result.timed_out  # stopped by the memory limit, not the clock
    assert "MemoryError" in result.stderr_tail
    scores = build_evaluator("pass_at_1", {"memory_mb": 128}).score([code_example("bomb", bomb)])
    assert scores.aggregate["pass_at_1"] == 0.0


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ('import os\nos.system("true")', "os.system"),
        ('import subprocess\nsubprocess.run(["true"])', "subprocess.Popen"),
        ('import socket\nsocket.create_connection(("127.0.0.1", 9))', "socket."),
        ('open("/var/tmp/PWNED_never", "w")', "/var/tmp/PWNED_never"),  # /tmp is the scratch dir
        ('open("../escape.txt", "w")', "escape.txt"),
        ("import os\nos.kill(os.getppid(), 9)", "os.kill"),
        ("import os\nos._exit(0)", "not allowed"),
    ],
)
def test_sandbox_refuses_escapes(source, refusal):
    result = run_python(source, limits=SandboxLimits(timeout_s=5))
    assert not result.passed
    assert "PermissionError" in result.stderr_tail
    assert refusal in result.stderr_tail


def test_sandbox_reports_timeouts():
    result = run_python("import time\ntime.sleep(60)", limits=SandboxLimits(timeout_s=0.5))
    assert result.timed_out and not result.passed and result.returncode is not None


def test_pass_at_1_rejects_untestable_records_all_at_once():
    bad = [
        EvalExample("no_tests", "p", "r", ADD, {}),
        EvalExample("rust", "p", "r", ADD, {"tests": ADD_TESTS, "language": "rust"}),
        EvalExample("str_tests", "p", "r", ADD, {"tests": "assert True"}),
    ]
    with pytest.raises(ValueError) as caught:
        build_evaluator("pass_at_1", {}).score(bad)
    for example_id in ("no_tests", "rust", "str_tests"):
        assert example_id in str(caught.value)


def test_pass_at_1_ignores_the_natural_language_field():
    """Shipped code records carry lang: en/zh (the prompt's language), not a program language."""
    ex = EvalExample("zh", "p", "r", ADD, {"tests": ADD_TESTS, "lang": "zh"})
    assert build_evaluator("pass_at_1").score([ex]).aggregate["pass_at_1"] == 1.0
