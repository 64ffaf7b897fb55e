"""GRPO with verifiable rewards and the win_rate evaluator (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ftsweep.config.load import load_experiment
from ftsweep.errors import ConfigError
from ftsweep.evaluators import EvalExample, build_evaluator
from ftsweep.evaluators.sandbox import SandboxLimits
from ftsweep.objectives.rewards import exact_match_reward, pass_at_1_reward, pass_rate
from ftsweep.rundir import SPEC, RunDir, atomic_write_json
from tests.conftest import DATA, experiment_yaml

ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 5) == 5"]


def grpo_yaml(
    name: str = "g",
    matrix: str = "matrix:\n  method: [full]\n",
    grpo: str = "{group_size: 4, max_completion_length: 8}",
    code: bool = False,
    **kw,
) -> str:
    text = experiment_yaml(name, matrix=matrix, **kw)
    text = text.replace("training:\n", f"training:\n  objective: grpo\n  grpo: {grpo}\n")
    if code:
        text = text.replace(f"{DATA}/instruction/", f"{DATA}/code/")
        text = text.replace("family: instruction", "family: code")
        text = text.replace("evaluators: [loss, exact_match]", "evaluators: [loss, pass_at_1]")
        text = text.replace("primary_metric: exact_match", "primary_metric: pass_at_1")
    return text


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_experiment(path)
    return [
        f"{p.file}:{p.line}: {p.key_path}: {p.message} (valid: {p.valid})"
        for p in exc.value.problems
    ]


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


# --- rewards -------------------------------------------------------------------------


def test_exact_match_reward_compares_extracted_answers():
    reward = exact_match_reward("gsm8k")
    assert reward.__name__ == "exact_match"  # TRL logs it as rewards/exact_match/mean
    completions = ["2 + 3 = 5\n#### 5", "2 + 3 = 6\n#### 6", "no answer line", "#### 1,000"]
    references = ["2 + 3 = 5\n#### 5", "#### 5", "#### 5", "#### 1000"]
    assert reward(prompts=[""] * 4, completions=completions, reference=references) == [
        1.0,
        0.0,
        0.0,
        1.0,
    ]
    plain = exact_match_reward(None, {"case_sensitive": False})
    assert plain(completions=[" Paris ", "paris", "Rome"], reference=["Paris"] * 3) == [
        1.0,
        1.0,
        0.0,
    ]


def test_pass_rate_is_the_share_of_tests_passing():
    limits = SandboxLimits(timeout_s=5)
    # Right for two of three tests (wrong when a is 0), in the middle one's position too.
    partly = "def add(a, b):\n    return a + b if a else -1\n"
    assert pass_rate(ADD, ADD_TESTS, limits, "bwrap") == 1.0
    assert pass_rate(partly, ADD_TESTS, limits, "bwrap") == pytest.approx(2 / 3)
    middle = ["assert add(1, 2) == 3", "assert add(0, 2) == 2", "assert add(2, 2) == 4"]
    assert pass_rate(partly, middle, limits, "bwrap") == pytest.approx(2 / 3)
    assert pass_rate("def add(a, b) return", ADD_TESTS, limits, "bwrap") == 0.0  # no parse
    assert pass_rate("raise SystemExit(0)\n", ADD_TESTS, limits, "bwrap") == 0.0
    reward = pass_at_1_reward("bwrap", timeout_s=5)
    assert reward.__name__ == "pass_at_1"
    assert reward(completions=[ADD, partly], tests=[ADD_TESTS, ADD_TESTS]) == pytest.approx(
        [1.0, 2 / 3]
    )


# --- win_rate ------------------------------------------------------------------------


def _items(answers: list[str], references: list[str], tests=None) -> list[EvalExample]:
    extra = [{"tests": tests}] * len(answers) if tests else [{}] * len(answers)
    return [
        EvalExample(f"e{i}", "", ref, ans, extra[i])
        for i, (ans, ref) in enumerate(zip(answers, references, strict=True))
    ]


def test_win_rate_counts_wins_losses_and_ties_by_exact_match():
    win_rate = build_evaluator("win_rate", {})
    refs = ["a", "b", "c", "d", "e"]
    start = _items(["a", "x", "c", "x", "x"], refs)  # right: e0, e2
    tuned = _items(["a", "b", "x", "d", "x"], refs)  # right: e0, e1, e3
    scores = win_rate.score_against(start, tuned)
    assert scores.aggregate == {"win_rate": (2 + 2 / 2) / 5, "wins": 2, "losses": 1, "ties": 2}
    assert scores.per_example == [
        ("e0", "win_rate", 0.5),
        ("e1", "win_rate", 1.0),
        ("e2", "win_rate", 0.0),
        ("e3", "win_rate", 1.0),
        ("e4", "win_rate", 0.5),
    ]
    with pytest.raises(TypeError, match="score_against"):
        win_rate.score(tuned)
    with pytest.raises(ValueError, match="same examples"):
        win_rate.score_against(start[:4], tuned)


def test_win_rate_judges_code_by_its_tests():
    win_rate = build_evaluator("win_rate", {})
    broken = "def add(a, b):\n    return a - b\n"
    start = _items([broken, ADD], ["", ""], ADD_TESTS)
    tuned = _items([ADD, ADD], ["", ""], ADD_TESTS)
    assert win_rate.judge_for(tuned).name == "pass_at_1"
    scores = win_rate.score_against(start, tuned)
    assert scores.aggregate == {"win_rate": 0.75, "wins": 1, "losses": 0, "ties": 1}


# --- validation ----------------------------------------------------------------------


def test_rewards_that_do_not_fit_the_data_are_refused_with_the_line(write_exp):
    text = grpo_yaml(grpo="{group_size: 4, rewards: [pass_at_1]}")
    path = write_exp(text)
    found = problems_of(path)
    line = line_of(text, "grpo: {")
    assert any(
        f"{path}:{line}: training.grpo.rewards" in p and "instruction records have none" in p
        for p in found
    ), found
    text = grpo_yaml(grpo="{group_size: 4, rewards: [exact_match]}", code=True)
    found = problems_of(write_exp(text, "code.yaml"))
    assert any("exact_match reward on code" in p and "rewards: [pass_at_1]" in p for p in found)
    fits = grpo_yaml(grpo="{group_size: 4, rewards: [pass_at_1], sandbox: none}", code=True)
    (run,) = load_experiment(write_exp(fits, "fits.yaml")).runs
    assert run.config["training"]["grpo"]["rewards"] == ["pass_at_1"]


def test_group_size_must_divide_the_completions_per_step(write_exp):
    text = grpo_yaml(grpo="{group_size: 3}")  # batch_size 8
    path = write_exp(text)
    found = problems_of(path)
    line = line_of(text, "grpo: {")
    assert any(
        f"{path}:{line}: training.grpo.group_size" in p
        and "8 completions per step" in p
        and "group_size in [2, 4, 8]" in p
        for p in found
    ), found
    ok = grpo_yaml(grpo="{group_size: 3}", launch="{num_processes: 3}").replace(
        "batch_size: 8", "batch_size: 1"
    )
    (run,) = load_experiment(write_exp(ok, "ok.yaml")).runs  # 1 x 1 x 3 completions: one group
    assert run.config["training"]["grpo"]["group_size"] == 3


def test_methods_grpo_cannot_train_and_eval_loss_are_refused(write_exp):
    matrix = "matrix:\n  method:\n    - base\n    - {name: prefix, num_virtual_tokens: [4]}\n"
    text = grpo_yaml(matrix=matrix).replace("logging_every: 2", "logging_every: 2\n  eval_every: 4")
    found = problems_of(write_exp(text))
    assert not any("method base" in p for p in found)  # evaluates the starting point
    assert any("method prefix cannot train" in p and "virtual tokens" in p for p in found)
    assert any("training.eval_every" in p and "no eval loss" in p for p in found)
    twice = grpo_yaml(grpo="{rewards: [exact_match, exact_match]}")
    assert any("each reward at most once" in p for p in problems_of(write_exp(twice, "b.yaml")))


# --- training ------------------------------------------------------------------------

METHODS = {"full": "method: [full]", "lora": "method:\n    - {name: lora, r: [8]}"}
BATCH = torch.tensor([[1, 57, 102, 33, 8, 219, 64, 12]])


def _run(tmp: Path, text: str, spy=None) -> tuple[RunDir, dict]:
    exp = tmp / "exp.yaml"
    exp.write_text(text, encoding="utf-8")
    (spec,) = load_experiment(exp).runs
    from ftsweep.worker import __main__ as worker

    mp = pytest.MonkeyPatch()
    mp.setenv("FTSWEEP_THREADS", "1")
    if spy is not None:
        mp.setattr(worker, "_save", spy(worker._save))
    rd = RunDir(tmp / spec.run_id)
    rd.path.mkdir()
    atomic_write_json(rd.file(SPEC), spec.to_json())
    try:
        result = worker.run(rd.path)
    finally:
        mp.undo()
    return rd, result


@pytest.fixture(scope="module")
def sft_parent(tmp_path_factory) -> Path:
    """A briefly fine-tuned model whose sampled answers are sometimes right: the start
    point GRPO needs (the base model's are never right, so every reward would be 0)."""
    tmp = tmp_path_factory.mktemp("grpo-parent")
    text = experiment_yaml("parent", matrix="matrix:\n  method: [full]\n", max_steps=40)
    rd, _ = _run(tmp, text.replace("lr: 1.0e-3", "lr: 3.0e-3"))
    return rd.file("artifacts")


@pytest.fixture(scope="module", params=sorted(METHODS))
def grpo_run(request, sft_parent, tmp_path_factory):
    """ONE tiny GRPO run per method from the SFT parent; the tests below read it."""
    tmp = tmp_path_factory.mktemp(f"grpo-{request.param}")
    text = grpo_yaml(
        f"grpo-{request.param}",
        matrix=f"matrix:\n  {METHODS[request.param]}\n",
        grpo="{group_size: 4, max_completion_length: 8, temperature: 1.0}",
        max_steps=8,
    )
    text = text.replace(str(DATA.parent / "models" / "tiny-base"), str(sft_parent))
    text = text.replace(
        "evaluators: [loss, exact_match]", "evaluators: [loss, exact_match, win_rate]"
    )
    if request.param == "lora":
        text = text.replace("lr: 1.0e-3", "lr: 1.0e-2")
    seen: dict[str, torch.Tensor] = {}

    def spy(save):
        def wrapped(method, model, tok, cfg, art):
            with torch.no_grad():
                seen["logits"] = model.eval()(input_ids=BATCH).logits
            return save(method, model, tok, cfg, art)

        return wrapped

    rd, result = _run(tmp, text, spy)
    return request.param, rd, result, seen["logits"], sft_parent


@pytest.mark.slow
def test_grpo_trains_logs_rewards_and_reloads_identically(grpo_run):
    method, rd, result, logits, parent = grpo_run
    assert result["status"] == "complete" and result["steps"] == 8
    metrics = list(rd.metrics())
    rewards = [m["value"] for m in metrics if m["name"] == "rewards/exact_match/mean"]
    assert len(rewards) == 4 and all(0.0 <= r <= 1.0 for r in rewards)
    assert any(r > 0 for r in rewards), "the parent's samples should sometimes be right"
    assert len([m for m in metrics if m["name"] == "loss"]) == 4
    assert any(m["name"] == "kl" for m in metrics)  # kl_coef 0.04: a reference is in use
    # The policy moved: its logits are not the parent's.
    from transformers import AutoModelForCausalLM

    from ftsweep.export import load_trained

    start = AutoModelForCausalLM.from_pretrained(parent).eval()
    with torch.no_grad():
        assert not torch.allclose(start(input_ids=BATCH).logits, logits, atol=1e-6)
        loaded, _ = load_trained(rd.path)
        assert torch.allclose(loaded(input_ids=BATCH).logits, logits, atol=1e-5)
    saved = json.loads((rd.file("artifacts") / "training_config.json").read_text())
    assert saved["training"]["objective"] == "grpo"
    if method == "lora":  # TRL's frozen reference adapter is not part of the artefact
        assert not (rd.file("artifacts") / "ref").exists()
        assert "ref" not in json.dumps(
            json.loads((rd.file("artifacts") / "adapter_config.json").read_text())
        )


@pytest.mark.slow
def test_win_rate_compares_with_the_model_as_loaded(grpo_run):
    _, rd, result, _, _ = grpo_run
    final = result["final_eval"]
    rows = [json.loads(x) for x in rd.file("evals.jsonl").read_text().splitlines()]
    wins = [r["value"] for r in rows if r["metric"] == "win_rate"]
    assert len(wins) == 16 and set(wins) <= {0.0, 0.5, 1.0}
    assert final["wins"] + final["losses"] + final["ties"] == 16
    assert final["wins"] == wins.count(1.0) and final["losses"] == wins.count(0.0)
    assert final["win_rate"] == pytest.approx(sum(wins) / 16)
