"""The worker's generation scores what the trained model computes, for every method kind."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftsweep.methods import get_method
from ftsweep.worker.evaluate import generate
from tests.conftest import MODEL

PROMPTS = [
    "### Instruction:\nWhat is 2 plus 3?\n\n### Response:\n",
    "### 指令:\n把这个词翻译成英文。\n\n### 输入:\n狗\n\n### 输出:\n",
]


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(MODEL)


@pytest.mark.parametrize("name", ["prefix", "prompt", "ptuning", "lora", "full"])
def test_first_generated_token_is_the_forward_argmax(name, tok):
    """peft's generate() drops a prefix-tuning prefix; ours must not (nor mangle padding)."""
    torch.manual_seed(0)
    method = get_method(name)()
    kw = {"num_virtual_tokens": 8} if name in ("prefix", "prompt", "ptuning") else {}
    model = method.apply(AutoModelForCausalLM.from_pretrained(MODEL), method.Params(**kw))
    with torch.no_grad():  # make the method's parameters matter
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    model.eval()
    texts = generate(model, tok, PROMPTS, 1, 8, torch.device("cpu"))
    for prompt, text in zip(PROMPTS, texts, strict=True):
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        expected = int(logits[0, -1].argmax())
        want = (
            "" if expected == tok.eos_token_id else tok.decode([expected], skip_special_tokens=True)
        )
        assert text == want


def test_evaluator_notes_reach_the_outcome(tmp_path, monkeypatch):
    """pass_at_1 run without OS isolation says so; the worker keeps it for result.json."""
    import ftsweep.evaluators.isolation as isolation
    from ftsweep.rundir import RunDir
    from ftsweep.worker import evaluate as worker_eval
    from ftsweep.worker.dataset import Example

    class Model:
        def eval(self) -> None:
            pass

    monkeypatch.setattr(isolation, "isolation_problem", lambda: "no bwrap here")
    monkeypatch.setattr(worker_eval, "generate", lambda *a, **k: ["def f():\n    return 1\n"])
    examples = [Example("e1", [1], [1], "p", "r", {"tests": ["assert f() == 1"]})]
    cfg = {
        "eval": {
            "evaluators": ["pass_at_1"],
            "evaluator_params": {"pass_at_1": {"sandbox": "none"}},
            "batch_size": 1,
            "max_new_tokens": 8,
        }
    }
    outcome = worker_eval.evaluate(
        Model(), None, examples, cfg, "test", RunDir(tmp_path), torch.device("cpu")
    )
    assert outcome.aggregate == {"pass_at_1": 1.0}
    assert outcome.notes == {"pass_at_1": {"sandbox": "none"}}
