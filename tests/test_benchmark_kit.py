"""The embedded default benchmark: data generators, shipped tiny model, record formats."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ftsweep.data import (
    TEMPLATES,
    dialogue_prompt,
    render_code,
    render_dialogue,
    render_instruction,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "tiny-base"
DATA_DIR = ROOT / "data"
REQUIRED = {
    "instruction": {"id", "instruction", "input", "output", "lang", "task"},
    "dialogue": {"id", "conversations", "lang", "task"},
    "code": {"id", "problem", "entry_point", "solution", "tests", "lang", "task"},
}


def _script(name: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "scripts"))  # build_tiny_base imports make_data
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_data() -> ModuleType:
    return _script("make_data")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)


def _records(family: str, split: str) -> list[dict]:
    text = (DATA_DIR / family / f"{split}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


# --- data ----------------------------------------------------------------------------


def test_generation_is_deterministic_and_matches_committed_files(make_data, tmp_path):
    first = make_data.write_all(tmp_path / "a", seed=0)
    second = make_data.write_all(tmp_path / "b", seed=0)
    assert len(first) == 9
    for a, b in zip(first, second, strict=True):
        rel = a.relative_to(tmp_path / "a")
        assert a.read_bytes() == b.read_bytes(), rel
        assert a.read_bytes() == (DATA_DIR / rel).read_bytes(), (
            f"data/{rel} is stale: rerun make_data"
        )
    other = make_data.generate_family("instruction", seed=1)["train"]
    assert other != make_data.generate_family("instruction", seed=0)["train"]


@pytest.mark.parametrize("family", sorted(REQUIRED))
@pytest.mark.parametrize("split", ["train", "eval", "test"])
def test_records_have_required_keys(family, split):
    records = _records(family, split)
    assert records
    ids = set()
    for rec in records:
        assert REQUIRED[family] <= rec.keys(), rec
        assert rec["lang"] in ("en", "zh")
        ids.add(rec["id"])
    assert len(ids) == len(records)
    assert {r["lang"] for r in records} == {"en", "zh"}


def test_code_solutions_pass_their_tests():
    for rec in _records("code", "test") + _records("code", "eval"):
        namespace: dict = {}
        exec(rec["solution"], namespace)  # our own generated data
        assert rec["entry_point"] in namespace
        for t in rec["tests"]:
            exec(t, namespace)


def test_held_out_inputs_of_open_tasks_are_unseen_in_train():
    def keys(split):
        return {
            (r["task"], r["instruction"], r["input"])
            for r in _records("instruction", split)
            if r["task"].startswith(("reverse", "kth", "count"))
        }

    assert keys("test") and not keys("test") & keys("train")


# --- model and tokenizer -------------------------------------------------------------


def test_model_dir_is_small_and_complete():
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    } <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert sum(p.stat().st_size for p in MODEL_DIR.iterdir()) <= 25 * 1024 * 1024


def test_model_loads_offline_and_generates(tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        MODEL_DIR, use_safetensors=True, local_files_only=True
    )
    assert type(model).__name__ == "LlamaForCausalLM"
    linear = {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= linear
    prompt, _ = render_instruction(_records("instruction", "test")[0], "auto")
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]


@pytest.mark.parametrize(
    "text",
    [
        "The red cat eats an apple.\n    return x + 1",
        "红色的猫在吃苹果。今天天气很好！",
        "mixed 中文 and English 123",
    ],
)
def test_tokenizer_round_trips(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_tokenizer_special_tokens_and_vocabulary(tokenizer, make_data):
    assert (
        tokenizer.eos_token == "</s>"
        and tokenizer.pad_token == "<pad>"
        and tokenizer.bos_token == "<s>"
    )
    for marker in ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"):
        assert len(tokenizer(marker, add_special_tokens=False)["input_ids"]) == 1
    # task words are single tokens, so word-level tasks are token-level tasks
    for word in make_data.LIST_WORDS_EN + list(make_data.NUMBERS):
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word


def test_model_card_matches_the_build_script():
    card = (MODEL_DIR / "README.md").read_text(encoding="utf-8")
    build = _script("build_tiny_base")
    docs = build.build_corpus(build.SEED)
    sha = hashlib.sha256("\n\x00\n".join(docs).encode("utf-8")).hexdigest()
    assert sha in card, "corpus changed since models/tiny-base was built: rerun build_tiny_base"
    assert (
        json.loads((MODEL_DIR / "tokenizer_config.json").read_text())["chat_template"]
        == build.CHAT_TEMPLATE
    )


# --- chat template and formats -------------------------------------------------------


def test_chat_template_renders_with_generation_prompt(tokenizer):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "你好"}]
    text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|system|>\nS<|end|>\n<|user|>\n你好<|end|>\n<|assistant|>\n"
    plain = tokenizer.apply_chat_template(msgs, tokenize=False)
    assert not plain.endswith("<|assistant|>\n")
    reply = tokenizer.apply_chat_template(
        [*msgs, {"role": "assistant", "content": "hi"}], tokenize=False
    )
    assert reply == plain + "<|assistant|>\nhi</s>\n"  # a reply ends with eos: generate() stops
    with pytest.raises(Exception, match="unknown role robot"):
        tokenizer.apply_chat_template([{"role": "robot", "content": "x"}], tokenize=False)


def test_tokenizer_prepends_bos_only_when_asked(tokenizer):
    assert tokenizer("cat")["input_ids"][0] == tokenizer.bos_token_id
    assert tokenizer("cat", add_special_tokens=False)["input_ids"][0] != tokenizer.bos_token_id


def test_render_instruction_templates():
    rec = {"instruction": "Add the two numbers.", "input": "3 4", "output": "7", "lang": "en"}
    prompt, completion = render_instruction(rec, "alpaca")
    assert prompt == "### Instruction:\nAdd the two numbers.\n\n### Input:\n3 4\n\n### Response:\n"
    assert completion == "7"
    no_input = render_instruction({**rec, "input": ""}, "alpaca")[0]
    assert "### Input" not in no_input
    zh = {**rec, "lang": "zh"}
    assert render_instruction(zh, "auto")[0] == render_instruction(zh, "alpaca_zh")[0]
    assert render_instruction(zh, "auto")[0].startswith("### 指令:\n")
    assert set(TEMPLATES) == {"alpaca", "alpaca_zh", "auto"}


def test_render_dialogue_flags_only_assistant_content(tokenizer):
    rec = _records("dialogue", "test")[0]
    segments = render_dialogue(rec, tokenizer)
    full = tokenizer.apply_chat_template(
        [
            {
                "role": {"human": "user", "gpt": "assistant"}.get(t["from"], t["from"]),
                "content": t["value"],
            }
            for t in rec["conversations"]
        ],
        tokenize=False,
    )
    assert "".join(text for text, _ in segments) == full
    trained = [text for text, flag in segments if flag]
    replies = [t["value"] for t in rec["conversations"] if t["from"] == "gpt"]
    assert trained == [f"{r}</s>\n" for r in replies]
    prompt, answer = dialogue_prompt(rec, tokenizer)
    assert prompt.endswith("<|assistant|>\n") and answer == replies[-1]
    assert full.startswith(prompt)


def test_render_code():
    rec = _records("code", "test")[0]
    prompt, completion = render_code(rec)
    assert rec["problem"] in prompt and rec["entry_point"] in prompt
    assert completion == rec["solution"]


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: render_instruction({"instruction": "x", "output": "y"}, "vicuna"),
            "unknown instruction template 'vicuna'",
        ),
        (
            lambda: render_instruction({"instruction": "x", "id": "r1"}, "alpaca"),
            "missing key 'output'",
        ),
        (lambda: render_code({"problem": "p", "solution": "s"}), "missing key 'entry_point'"),
        (lambda: render_dialogue({"id": "d"}, None), "missing key 'conversations'"),
    ],
)
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_bad_dialogues_get_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="conversations\\[0\\].from = 'bot'"):
        render_dialogue({"conversations": [{"from": "bot", "value": "x"}]}, tokenizer)
    with pytest.raises(ValueError, match="missing key 'value'"):
        render_dialogue({"conversations": [{"from": "human"}]}, tokenizer)
    with pytest.raises(ValueError, match="must end with a 'gpt' turn"):
        dialogue_prompt({"conversations": [{"from": "human", "value": "hi"}]}, tokenizer)
