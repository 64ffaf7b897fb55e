"""Sampling at evaluation, answer extraction, pass@k and majority vote.

Estimator values are worked out by hand in the comments; one real sampled generation
on the shipped tiny model checks the worker's side (seeded, every raw sample kept).
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftsweep.config.schema import EvalBlock
from ftsweep.evaluators import EvalExample, build_evaluator
from ftsweep.evaluators import extract as ex
from ftsweep.evaluators.sampling import majority_answer, pass_at_k
from ftsweep.rundir import EVALS, GENERATIONS, RunDir, read_jsonl
from ftsweep.worker.dataset import Example
from ftsweep.worker.evaluate import evaluate
from ftsweep.worker.sampling import filter_top_p, sample
from tests.conftest import MODEL

# --- the unbiased estimator -------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),  # pass@1 is c/n
        (5, 2, 2, 1 - 3 / 10),  # C(3,2)=3, C(5,2)=10
        (5, 2, 3, 1 - 1 / 10),  # C(3,3)=1, C(5,3)=10
        (5, 2, 4, 1.0),  # C(3,4)=0: any 4 of 5 include a correct one
        (4, 0, 2, 0.0),
        (4, 4, 1, 1.0),
        (10, 3, 5, 1 - 21 / 252),  # C(7,5)=21, C(10,5)=252
    ],
)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_refuses_impossible_counts():
    for n, c, k in [(3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)]:
        with pytest.raises(ValueError, match="pass@k needs"):
            pass_at_k(n, c, k)


def item(example_id: str, reference: str, samples: list[str]) -> EvalExample:
    return EvalExample(example_id, "p", reference, samples[0], {}, tuple(samples))


def test_pass_at_k_evaluator_reports_every_k_up_to_n():
    # e0: 2 of 4 correct -> pass@1 .5, pass@2 1-C(2,2)/C(4,2) = 5/6, pass@3 1, pass@4 1
    # e1: 0 of 4 correct -> 0 for every k
    examples = [item("e0", "42", ["42", "41", " 42 ", "7"]), item("e1", "3", ["1", "2", "", "4"])]
    scores = build_evaluator("pass_at_k").score(examples)
    assert scores.aggregate == pytest.approx(
        {"pass@1": 0.25, "pass@2": 5 / 12, "pass@3": 0.5, "pass@4": 0.5}
    )
    rows = {(i, m): v for i, m, v in scores.per_example}
    assert rows[("e0", "pass@2")] == pytest.approx(5 / 6)
    assert rows[("e1", "pass@4")] == 0.0
    assert len(scores.per_example) == 8
    # the per-example rows average to the aggregate (declared aggregation: mean)
    for k in range(1, 5):
        vals = [v for _, m, v in scores.per_example if m == f"pass@{k}"]
        assert sum(vals) / len(vals) == pytest.approx(scores.aggregate[f"pass@{k}"])
    assert set(scores.aggregate) == set(type(build_evaluator("pass_at_k")).metrics_for(4))


def test_pass_at_k_refuses_uneven_sample_counts():
    with pytest.raises(ValueError, match="different numbers of samples"):
        build_evaluator("pass_at_k").score([item("a", "1", ["1", "2"]), item("b", "1", ["1"])])


def test_majority_vote_hand_computed():
    examples = [
        item("e0", "42", ["41", "42", "42", "7"]),  # 42 wins 2-1-1: correct
        item("e1", "5", ["5", "6", "6", ""]),  # 6 wins: wrong
        item("e2", "8", ["8", "9", "", ""]),  # tie 1-1 (empties do not vote): first drawn, 8
        item("e3", "1", ["", "", "", ""]),  # no answer at all: wrong
    ]
    scores = build_evaluator("majority_vote").score(examples)
    assert [v for _, _, v in scores.per_example] == [1.0, 0.0, 1.0, 0.0]
    assert scores.aggregate == {"majority_vote": 0.5}
    assert majority_answer(["9", "8", "8", "9"]) == "9"  # tie: the first drawn
    assert majority_answer(["", " "]) is None


# --- answer extraction -----------------------------------------------------------


@pytest.mark.parametrize(
    ("extractor", "text", "answer"),
    [
        ("gsm8k", "She has 3+4=7 apples.\n#### 7", "7"),
        ("gsm8k", "#### 1,234", "1234"),
        ("gsm8k", "first #### 3 then #### $18.00", "18"),
        ("gsm8k", "no answer line 42", None),
        ("last_number", "3 boxes of 12 make 36 eggs.", "36"),
        ("last_number", "It costs -2.50 dollars", "-2.5"),
        ("last_number", "none here", None),
        ("boxed", "so \\boxed{42}.", "42"),
        ("boxed", "\\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("boxed", "\\boxed{4", None),
    ],
)
def test_named_extractors(extractor, text, answer):
    assert ex.NAMED[extractor](text) == answer


def test_number_normalisation():
    assert ex.normalize_number("1,000") == "1000"
    assert ex.normalize_number("+7.0") == "7"
    assert ex.normalize_number("$3.50") == "3.5"
    assert ex.normalize_number("-0") == "0"
    assert ex.normalize_number(" seven ") == "seven"
    assert ex.normalize_number("1,2,3") == "123"  # commas dropped wherever they are


def test_regex_extractor_takes_the_last_match_of_its_group():
    extract = ex.build({"regex": r"answer is (\S+)"})
    assert extract is not None
    assert extract("the answer is 4, no, the answer is 5.0") == "5"
    assert extract("nothing") is None
    assert ex.reference_answer(extract, "17") == "17"  # a bare reference stays itself


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ({"answer_extraction": {"regex": "a(b"}}, "not a valid regular expression"),
        ({"answer_extraction": {"regex": "(a)(b)"}}, "exactly one capturing group"),
        ({"answer_extraction": "gsm9k"}, "'gsm8k', 'last_number' or 'boxed'"),
        ({"generation": {"num_samples": 4}}, "set do_sample: true"),
        ({"max_new_tokens": 8, "generation": {"max_new_tokens": 9}}, "disagree"),
        ({"generation": {"top_p": 0}}, "greater than 0"),
    ],
)
def test_bad_eval_options_are_refused(block, fragment):
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(")):
        EvalBlock.model_validate(block)


def test_max_new_tokens_shorthand_and_default():
    assert EvalBlock(max_new_tokens=8).new_tokens == 8
    assert EvalBlock(generation={"max_new_tokens": 9}).new_tokens == 9
    assert EvalBlock().new_tokens == 32


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = torch.isfinite(filter_top_p(logits, 0.7)).tolist()
    assert kept == [True, True, False, False]  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7
    assert torch.isfinite(filter_top_p(logits, 0.4)).tolist() == [True, False, False, False]


# --- a real sampled generation on the tiny model -----------------------------------

PROMPTS = ["### Instruction:\nWhat is 2 plus 3?\n\n### Response:\n", "### Instruction:\nHi\n"]


@pytest.fixture(scope="module")
def tiny():
    return AutoModelForCausalLM.from_pretrained(MODEL).eval(), AutoTokenizer.from_pretrained(MODEL)


def test_sampling_is_seeded_and_returns_n_samples(tiny):
    model, tok = tiny
    gen = {"num_samples": 3, "temperature": 1.5, "top_p": 1.0}
    first = sample(model, tok, PROMPTS, gen, 6, 8, torch.device("cpu"), seed=1)
    again = sample(model, tok, PROMPTS, gen, 6, 8, torch.device("cpu"), seed=1)
    other = sample(model, tok, PROMPTS, gen, 6, 8, torch.device("cpu"), seed=2)
    assert [len(s) for s in first] == [3, 3]
    assert first == again  # reproducible
    assert first != other  # and the seed matters (hot temperature, untrained model)
    slow = sample(model, tok, PROMPTS, gen, 6, 8, torch.device("cpu"), 1, prompt_learning=True)
    assert [len(s) for s in slow] == [3, 3]
    assert slow == sample(model, tok, PROMPTS, gen, 6, 8, torch.device("cpu"), 1, True)


def test_worker_evaluate_keeps_raw_samples_beside_extracted_answers(tiny, tmp_path):
    model, tok = tiny
    examples = [
        Example(f"e{i}", [1], [1], p, f"work... #### {i + 1}", {}) for i, p in enumerate(PROMPTS)
    ]
    cfg = {
        "seed": 0,
        "eval": {
            "evaluators": ["exact_match", "pass_at_k", "majority_vote"],
            "batch_size": 4,
            "max_new_tokens": None,
            "answer_extraction": "last_number",
            "generation": {
                "do_sample": True,
                "temperature": 1.0,
                "top_p": 0.9,
                "num_samples": 2,
                "max_new_tokens": 5,
            },
        },
    }
    run = RunDir(tmp_path)
    outcome = evaluate(model, tok, examples, cfg, "test", run, torch.device("cpu"))
    assert set(outcome.aggregate) == {"exact_match", "pass@1", "pass@2", "majority_vote"}
    records = read_jsonl(run.file(GENERATIONS))
    assert [r["example_id"] for r in records] == ["e0", "e1"]
    for r in records:
        assert len(r["samples"]) == len(r["answers"]) == 2
        assert r["reference_answer"] == r["reference"].split("#### ")[1]
        for raw, answer in zip(r["samples"], r["answers"], strict=True):
            assert answer == (ex.last_number(raw) or "")
    rows = read_jsonl(run.file(EVALS))
    first = {r["example_id"]: r for r in rows if r["metric"] == "exact_match"}
    for r in records:  # the scored prediction is the first sample's answer
        assert first[r["example_id"]]["prediction"] == r["answers"][0]
        assert first[r["example_id"]]["reference"] == r["reference_answer"]
    again = tmp_path / "again"
    again.mkdir()
    evaluate(model, tok, examples, cfg, "test", RunDir(again), torch.device("cpu"))
    assert read_jsonl(RunDir(again).file(GENERATIONS)) == records  # seeded: same samples


# --- ROUGE-L -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "lcs", "n_pred", "n_ref"),
    [
        ("a c e x", "a b c d e", 3, 4, 5),  # LCS a c e
        ("The cat sat on the mat.", "the cat lay on a mat", 4, 6, 6),  # the cat on mat
        ("x y", "a b", 0, 2, 2),
        ("b a", "a b", 1, 2, 2),  # order matters: a subsequence, not a bag
    ],
)
def test_rouge_l_equals_hand_computed_lcs_f_measure(prediction, reference, lcs, n_pred, n_ref):
    p, r = lcs / n_pred, lcs / n_ref
    expected = 0.0 if lcs == 0 else 2 * p * r / (p + r)
    scores = build_evaluator("rouge_l").score([EvalExample("e", "", reference, prediction)])
    assert scores.aggregate["rouge_l"] == pytest.approx(expected, abs=1e-4)


def test_rouge_l_per_example_rows_average_to_the_aggregate_and_cjk_tokens():
    examples = [
        EvalExample("e0", "", "a b c d e", "a c e x"),  # 2/3
        EvalExample("e1", "", "x y", "x y"),  # 1
        EvalExample("e2", "", "我爱猫", "我爱狗"),  # words: no a-z0-9 tokens at all -> 0
    ]
    scores = build_evaluator("rouge_l").score(examples)
    values = [v for _, _, v in scores.per_example]
    assert values == pytest.approx([2 / 3, 1.0, 0.0], abs=1e-4)
    assert scores.aggregate["rouge_l"] == pytest.approx(sum(values) / 3)
    cjk = build_evaluator("rouge_l", {"tokenizer": "cjk"}).score(examples[2:])
    assert cjk.aggregate["rouge_l"] == pytest.approx(2 / 3, abs=1e-4)  # LCS 我爱 of 3 chars


def test_pass_at_k_beyond_num_samples_is_refused_as_a_metric(write_exp):
    from ftsweep.config.load import ConfigError, load_experiment
    from tests.conftest import experiment_yaml

    text = experiment_yaml("pk", matrix="matrix:\n  method: [base]\n").replace(
        "  evaluators: [loss, exact_match]\n  primary_metric: exact_match\n",
        "  evaluators: [pass_at_k]\n  primary_metric: pass@3\n"
        "  generation: {do_sample: true, num_samples: 2}\n",
    )
    with pytest.raises(ConfigError, match=r"primary_metric.*valid: pass@1, pass@2"):
        load_experiment(write_exp(text), deep=True)
    assert load_experiment(write_exp(text.replace("pass@3", "pass@2")), deep=True).runs


def test_answer_extraction_never_reaches_an_evaluator_of_raw_text(tmp_path, monkeypatch):
    """pass_at_1 runs the generated program, so it must get it whole, not "1"."""
    import ftsweep.evaluators.isolation as isolation
    from ftsweep.worker import evaluate as worker_eval

    class Model:
        def eval(self) -> None:
            pass

    program = "def f():\n    return 1\n"
    monkeypatch.setattr(isolation, "isolation_problem", lambda: "no bwrap here")
    monkeypatch.setattr(worker_eval, "generate", lambda *a, **k: [program])
    examples = [Example("e1", [1], [1], "p", "1", {"tests": ["assert f() == 1"]})]
    cfg = {
        "eval": {
            "evaluators": ["pass_at_1", "exact_match"],
            "evaluator_params": {"pass_at_1": {"sandbox": "none"}},
            "batch_size": 1,
            "answer_extraction": "last_number",
        }
    }
    outcome = worker_eval.evaluate(
        Model(), None, examples, cfg, "test", RunDir(tmp_path), torch.device("cpu")
    )
    # the program passes its test; its last number, "1", matches the reference "1"
    assert outcome.aggregate == {"pass_at_1": 1.0, "exact_match": 1.0}
