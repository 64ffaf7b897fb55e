"""Your own data: field mapping, templates, mixtures and code records without tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftsweep.config.load import load_experiment
from ftsweep.config.schema import DataBlock, FieldMap
from ftsweep.data.records import check_file, load_split_records
from ftsweep.errors import ConfigError
from tests.conftest import DATA, MODEL


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _data(train: Path, **kw) -> dict:
    return DataBlock(train=str(train), **kw).model_dump()


def test_instruction_fields_map_metamath_layout(tmp_path):
    train = _write(
        tmp_path / "m.jsonl",
        [
            {"query": "2+2?", "response": "4", "type": "GSM"},
            {"query": "3+1?", "response": "4", "input": "ignored"},
        ],
    )
    data = _data(train, fields=FieldMap(instruction="query", output="response", input=None))
    records, counts = load_split_records(data, {"data.train": str(train)}, "train")
    assert counts["kept"] == 2
    assert [(r["instruction"], r["output"]) for r in records] == [("2+2?", "4"), ("3+1?", "4")]
    # input: null means the data has no input field: an unrelated "input" key is not read
    assert "input" not in records[1] and records[1]["query"] == "3+1?"
    # mapped to a key a record lacks: the record has no input, whatever "input" holds
    data = _data(train, fields=FieldMap(instruction="query", output="response", input="ctx"))
    records, _ = load_split_records(data, {"data.train": str(train)}, "train")
    assert "input" not in records[1]


def test_missing_mapped_field_is_reported_with_its_line_and_name(tmp_path):
    train = _write(
        tmp_path / "m.jsonl",
        [{"query": "a", "response": "b"}, {"query": "a"}, {"response": "b", "instruction": "x"}],
    )
    fields = FieldMap(instruction="query", output="response").model_dump()
    found = dict(check_file(train, "instruction", "error", False, fields))
    assert sorted(found) == [2, 3]
    assert "missing response (data.fields.output)" in found[2]
    assert "missing query (data.fields.instruction)" in found[3]
    assert "instruction records need query, response" in found[3]


def test_dialogue_fields_map_openai_messages_and_role_names(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "sys", "content": "be brief"},
                {"role": "customer", "content": "hi"},
                {"role": "agent", "content": "hello"},
            ]
        },
        {"messages": [{"role": "customer", "content": "hi"}, {"role": "robot", "content": "x"}]},
        {"messages": [{"role": "customer", "text": "hi"}]},
    ]
    train = _write(tmp_path / "d.jsonl", rows)
    fields = FieldMap(
        messages="messages",
        role="role",
        content="content",
        roles={"sys": "system", "customer": "user", "agent": "assistant"},
    )
    found = dict(check_file(train, "dialogue", "error", False, fields.model_dump()))
    assert sorted(found) == [2, 3]
    assert "'robot' is not in data.fields.roles; valid: sys, customer, agent" in found[2]
    assert "messages[0] is missing key 'content' (data.fields.content)" in found[3]
    data = _data(train, family="dialogue", fields=fields, on_bad_record="drop")
    records, counts = load_split_records(data, {"data.train": str(train)}, "train")
    assert counts["malformed"] == 2
    assert records[0]["conversations"] == [
        {"from": "system", "value": "be brief"},
        {"from": "user", "value": "hi"},
        {"from": "assistant", "value": "hello"},
    ]


def _exp(tmp_path: Path, data: str, extra: str = "", name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(
        f"experiment: own\nmodel:\n  path: {MODEL}\n{data}{extra}matrix:\n  method: [base]\n",
        encoding="utf-8",
    )
    return p


def test_validation_reports_a_missing_mapped_field_at_file_line(tmp_path):
    train = _write(tmp_path / "m.jsonl", [{"query": "a", "response": "b"}, {"query": "c"}])
    exp = _exp(
        tmp_path,
        f"data:\n  train: {train}\n  test: {train}\n"
        "  fields: {instruction: query, output: response, input: null}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(exp)
    text = str(err.value)
    assert f"{train}:2: missing response (data.fields.output)" in text
    assert text.count("missing response") == 2  # once for data.train, once for data.test


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL))


def _trained_text(example, tok) -> str:
    from ftsweep.worker.dataset import IGNORE

    ids = [t for t in example.labels if t != IGNORE]
    return tok.decode(ids, skip_special_tokens=False)


REC = {
    "instruction": "Name the color.",
    "input": "red",
    "output": "red",
    "query": "What is 2 plus 2?",
}


@pytest.mark.parametrize(
    "template",
    [
        "alpaca",
        {"prompt": "Q: {{ query }}\nA: ", "completion": None},
        {"prompt": "{{ instruction }} | {{ input }} =>", "completion": " {{ output | upper }}"},
    ],
)
def test_loss_mask_covers_exactly_the_completion(tok, template):
    from ftsweep.data.templates import render_jinja
    from ftsweep.worker.dataset import encode

    data = {
        "family": "instruction",
        "template": template,
        "completion_only_loss": True,
        "max_length": 256,
        "truncation_side": "right",
    }
    ex = encode(dict(REC), 0, "train", data, tok)
    if isinstance(template, dict):
        prompt, completion = render_jinja(REC, template, "instruction")
    else:
        from ftsweep.data.formats import render_instruction

        prompt, completion = render_instruction(REC, template)
    assert ex.prompt == prompt and ex.reference == completion
    # the trained tokens are the completion and the eos that teaches the model to stop
    assert _trained_text(ex, tok) == completion + tok.eos_token
    assert tok.decode(ex.input_ids, skip_special_tokens=False).endswith(
        prompt + completion + tok.eos_token
    )


def test_chat_template_renders_instruction_data_as_an_exchange(tok):
    from ftsweep.data.templates import chat_segments
    from ftsweep.worker.dataset import encode

    data = {
        "family": "instruction",
        "template": "chat",
        "completion_only_loss": True,
        "max_length": 256,
        "truncation_side": "right",
    }
    ex = encode(dict(REC), 0, "train", data, tok)
    head, tail = chat_segments(REC, tok)
    expected_head = tok.apply_chat_template(
        [{"role": "user", "content": "Name the color.\n\nred"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert head == expected_head and ex.prompt == head
    assert ex.reference == "red"  # scored against the answer, not the end-of-turn marker
    # loss on the answer plus the template's end of turn (no extra eos appended)
    assert tail.startswith("red") and tail != "red"
    assert _trained_text(ex, tok) == tail
    assert tok.decode(ex.input_ids, skip_special_tokens=False).endswith(head + tail)


def test_jinja_template_is_sandboxed_and_strict():
    from ftsweep.data.templates import render_jinja

    with pytest.raises(ValueError, match="'query' is undefined"):
        render_jinja({"instruction": "x", "output": "y"}, {"prompt": "{{ query }}"}, "instruction")
    with pytest.raises(ValueError, match="unsafe|not safely|access"):
        render_jinja(
            {"output": "y"},
            {"prompt": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
            "instruction",
        )


def test_template_validation_reports_every_problem_with_its_place(tmp_path):
    import shutil

    train = _write(tmp_path / "t.jsonl", [{"q": "a", "output": "b"}, {"output": "c"}])
    exp = _exp(
        tmp_path,
        f"data:\n  train: {train}\n  test: {train}\n  on_bad_record: drop\n"
        "  template: {prompt: 'Q: {{ q }}'}\n",
        "eval:\n  split: test\n",
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(exp)
    assert f"{train}:2: data.template: 'q' is undefined" in str(err.value)
    bad = _exp(
        tmp_path,
        f"data:\n  train: {train}\n  test: {train}\n  template: {{prompt: 'Q: {{{{ q '}}\n",
        name="bad.yaml",
    )
    with pytest.raises(ConfigError, match="Jinja syntax error at line 1 of prompt"):
        load_experiment(bad)
    # chat needs a tokenizer with a chat template: a copy of the tiny model without one
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    del cfg["chat_template"]
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    inst = DATA / "instruction" / "test.jsonl"
    nochat = tmp_path / "nochat.yaml"
    nochat.write_text(
        f"experiment: own\nmodel:\n  path: {model}\n"
        f"data:\n  train: {inst}\n  test: {inst}\n  template: chat\n"
        "matrix:\n  method: [base]\n"
    )
    with pytest.raises(ConfigError, match="has no chat template"):
        load_experiment(nochat)


def test_prompt_file_is_read_relative_to_the_experiment(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.j2").write_text("Question: {{ instruction }}\nAnswer: ")
    (tmp_path / "prompts" / "c.j2").write_text("{{ output }} (done)")
    inst = DATA / "instruction" / "test.jsonl"
    exp = _exp(
        tmp_path,
        f"data:\n  train: {inst}\n  test: {inst}\n"
        "  template: {prompt_file: prompts/p.j2, completion_file: prompts/c.j2}\n",
    )
    run = load_experiment(exp).runs[0]
    assert run.config["data"]["template"]["prompt"] == "Question: {{ instruction }}\nAnswer: "
    assert run.config["data"]["template"]["completion"] == "{{ output }} (done)"
    both = _exp(
        tmp_path,
        f"data:\n  train: {inst}\n  test: {inst}\n"
        "  template: {prompt: 'x', prompt_file: prompts/p.j2, completion_file: nope.j2}\n",
        name="both.yaml",
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(both)
    assert "give prompt or prompt_file, not both" in str(err.value)
    assert "data.template.completion_file: cannot read the template file" in str(err.value)


def test_mixture_weights_draw_deterministic_counts(tmp_path):
    from ftsweep.data.mixture import mix

    a = [{"instruction": f"a{i}", "output": "x"} for i in range(10)]
    b = [{"instruction": f"b{i}", "output": "y"} for i in range(4)]
    sources = [({"path": "a.jsonl", "weight": 0.5}, a), ({"path": "b.jsonl", "weight": 2.5}, b)]
    out, counts = mix(sources, seed=3)
    assert counts == {"source:a": 5, "source:b": 10}
    assert len(out) == 15 and sum(r["instruction"].startswith("b") for r in out) == 10
    # b: every record twice, then 2 of the 4 once more
    assert sorted({r["instruction"] for r in out if r["instruction"][0] == "b"}) == [
        "b0",
        "b1",
        "b2",
        "b3",
    ]
    again, _ = mix(sources, seed=3)
    other, _ = mix(sources, seed=4)
    assert again == out and other != out


def test_mixture_sources_carry_their_own_fields_and_counts(tmp_path):
    meta = _write(
        tmp_path / "meta.jsonl", [{"query": f"q{i}", "response": f"r{i}"} for i in range(6)]
    )
    alpaca = _write(
        tmp_path / "alpaca.jsonl",
        [{"instruction": f"i{i}", "input": "", "output": f"o{i}"} for i in range(4)],
    )
    data = DataBlock(
        train=[
            {
                "path": str(meta),
                "weight": 0.5,
                "fields": {"instruction": "query", "output": "response"},
            },
            {"path": str(alpaca), "name": "alp"},
        ]
    ).model_dump()
    paths = {"data.train.meta": str(meta), "data.train.alp": str(alpaca)}
    records, counts = load_split_records(data, paths, "train")
    assert counts["source:meta"] == 3 and counts["source:alp"] == 4 and counts["kept"] == 7
    assert {r["instruction"][0] for r in records} == {"q", "i"}
    assert all(r["output"] for r in records)
    with pytest.raises(ValueError, match="share the name a"):
        DataBlock(train=[{"path": "x/a.jsonl"}, {"path": "y/a.jsonl"}])
    with pytest.raises(ValueError, match="cannot split a mixture"):
        DataBlock(train=[{"path": "a.jsonl"}], eval_fraction=0.1)


def test_mixture_validates_each_source_and_fingerprints_it(tmp_path):
    meta = _write(tmp_path / "meta.jsonl", [{"query": "q", "response": "r"}, {"query": "x"}])
    inst = DATA / "instruction" / "test.jsonl"
    text = (
        f"data:\n  test: {inst}\n  train:\n    - {{path: {inst}, name: shipped}}\n"
        f"    - path: {meta}\n      fields: {{instruction: query, output: response}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(_exp(tmp_path, text))
    assert f"data.train[1].path: {meta}:2: missing response (data.fields.output)" in str(err.value)
    _write(meta, [{"query": "q", "response": "r"}])
    run = load_experiment(_exp(tmp_path, text)).runs[0]
    assert set(run.fingerprints) >= {"data.train.shipped", "data.train.meta", "data.test"}
    assert run.paths["data.train.meta"] == str(meta)


def test_code_records_without_tests_train_but_refuse_pass_at_1(tmp_path, tok):
    from ftsweep.worker.dataset import encode

    rows = [
        {
            "id": "a",
            "problem": "Return 1.",
            "entry_point": "f",
            "solution": "def f():\n    return 1\n",
        },
        {
            "id": "b",
            "problem": "Return 2.",
            "entry_point": "g",
            "solution": "def g():\n    return 2\n",
            "tests": ["assert g() == 2"],
        },
    ]
    code = _write(tmp_path / "c.jsonl", rows)
    data = _data(code, family="code")
    records, counts = load_split_records(data, {"data.train": str(code)}, "train")
    assert counts["kept"] == 2 and "tests" not in records[0]
    ex = encode(records[0], 0, "train", {**data, "max_length": 256}, tok)
    assert _trained_text(ex, tok) == rows[0]["solution"] + tok.eos_token
    ok = _exp(tmp_path, f"data:\n  family: code\n  train: {code}\n  test: {code}\n")
    assert load_experiment(ok).runs  # loss only: no tests needed
    bad = _exp(
        tmp_path,
        f"data:\n  family: code\n  train: {code}\n  test: {code}\n",
        "eval:\n  evaluators: [loss, pass_at_1]\n  primary_metric: pass_at_1\n",
        name="bad.yaml",
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(bad)
    assert f"1 records of {code} have none (first at {code}:1)" in str(err.value)
    assert "eval.evaluators[1]" in str(err.value)


def test_one_round_schema_errors_do_not_hide_data_model_or_evaluator_problems(tmp_path):
    train = _write(tmp_path / "t.jsonl", [{"instruction": "a", "output": "b"}, {"instruction": 1}])
    exp = _exp(
        tmp_path,
        f"data:\n  train: {train}\n  test: {train}\n  max_length: 100000\n",
        "training:\n  lrr: 0.1\n"  # a schema error...
        "eval:\n  evaluators: [loss, exact_matc]\n",
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(exp)
    text = str(err.value)
    assert "training.lrr: unknown key (did you mean 'lr'?)" in text
    # ...and, in the same round, the data, evaluator and model problems
    assert f"{train}:2: missing output" in text
    assert "exact_matc" in text and "eval.evaluators[1]" in text
    assert "data.max_length: longer than the model's context" in text
    assert "max_position_embeddings 256" in text and "valid: at most 256" in text


def test_model_loading_options_are_checked_against_the_hardware(tmp_path):
    import torch

    inst = DATA / "instruction" / "test.jsonl"
    data = f"data:\n  train: {inst}\n  test: {inst}\n"
    exp = _exp(
        tmp_path, data.replace("data:", "  dtype: bf16\n  attn_implementation: eager\ndata:")
    )
    run = load_experiment(exp).runs[0]
    assert run.config["model"]["dtype"] == "bf16"
    from ftsweep.worker.setup import load_dtype

    assert load_dtype("fp32", "bf16") == torch.bfloat16 and load_dtype("bf16") == torch.bfloat16
    assert load_dtype("fp32") == torch.float32
    if torch.cuda.is_available():
        return  # the refusals below are for a machine without a GPU
    bad = _exp(
        tmp_path,
        data.replace("data:", "  dtype: fp16\n  attn_implementation: flash_attention_2\ndata:"),
        name="bad.yaml",
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(bad)
    text = str(err.value)
    assert "model.dtype: fp16 weights need a CUDA GPU" in text
    assert "flash_attention_2 needs a CUDA GPU" in text


def test_warmup_longer_than_the_run_and_hub_models_are_warned_about(tmp_path):
    inst = DATA / "instruction" / "test.jsonl"
    exp = _exp(
        tmp_path,
        f"data:\n  train: {inst}\n  test: {inst}\n",
        "training:\n  max_steps: 5\n  warmup_steps: 5\n",
    )
    notes = [n.format() for n in load_experiment(exp).notes]
    assert any("warm-up (5 steps) is not shorter than the run (max_steps 5)" in n for n in notes)
    hub = tmp_path / "hub.yaml"
    hub.write_text(
        "experiment: own\nmodel:\n  path: some-org/some-model\n"
        f"data:\n  train: {inst}\n  test: {inst}\nmatrix:\n  method: [base]\n"
    )
    (note,) = load_experiment(hub).notes
    assert "not on this machine" in note.message and "data.max_length" in note.message


def test_run_ids_do_not_depend_on_how_paths_are_spelt(tmp_path):
    import os
    import shutil

    work = tmp_path / "proj"
    (work / "exps").mkdir(parents=True)
    shutil.copytree(DATA / "instruction", work / "data")
    (work / "prompt.j2").write_text("Q: {{ instruction }} {{ input }}\nA: ")
    os.symlink(work / "data", tmp_path / "linked")
    os.symlink(MODEL, tmp_path / "model-link")

    def ids(model: str, data: str, prompt: str) -> list[str]:
        exp = work / "exps" / "e.yaml"
        exp.write_text(
            f"experiment: own\nmodel:\n  path: {model}\n"
            f"data:\n  train: {data}/train.jsonl\n  test: {data}/test.jsonl\n"
            f"  template: {{prompt_file: {prompt}}}\n"
            "matrix:\n  method: [base, {name: lora, r: [4, 8]}]\n"
        )
        return [r.run_id for r in load_experiment(exp).runs]

    relative = ids(os.path.relpath(MODEL, work / "exps"), "../data", "../prompt.j2")
    absolute = ids(str(MODEL), str(work / "data"), str(work / "prompt.j2"))
    linked = ids(str(tmp_path / "model-link"), str(tmp_path / "linked"), "./../prompt.j2")
    assert relative == absolute == linked and len(set(relative)) == 3
    # the contents still count: another prompt or another data file is another run
    (work / "prompt.j2").write_text("Question: {{ instruction }}\nAnswer: ")
    assert ids(str(MODEL), "../data", "../prompt.j2") != relative
    (work / "prompt.j2").write_text("Q: {{ instruction }} {{ input }}\nA: ")
    with open(work / "data" / "train.jsonl", "a") as fh:
        fh.write(json.dumps({"instruction": "x", "output": "y"}) + "\n")
    assert ids(str(MODEL), "../data", "../prompt.j2") != relative


def test_warmup_is_compared_with_an_epoch_budget_too(tmp_path):
    inst = DATA / "instruction" / "test.jsonl"
    exp = _exp(
        tmp_path,
        f"data:\n  train: {inst}\n  test: {inst}\n  max_train_samples: 32\n",
        "training:\n  epochs: 2\n  batch_size: 8\n  warmup_steps: 8\n",
    )
    (note,) = load_experiment(exp).notes
    assert "at most 8 steps: 2 epochs of 32 examples" in note.message
    exp.write_text(exp.read_text().replace("warmup_steps: 8", "warmup_steps: 7"))
    assert load_experiment(exp).notes == []


def test_validate_prints_the_warnings_and_still_succeeds(tmp_path, capsys):
    from ftsweep.cli import main as cli_main

    inst = DATA / "instruction" / "test.jsonl"
    exp = _exp(
        tmp_path,
        f"data:\n  train: {inst}\n  test: {inst}\n",
        "training:\n  max_steps: 3\n  warmup_steps: 4\n",
    )
    assert cli_main(["--workspace", str(tmp_path / "ws"), "validate", str(exp)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"warning {exp}:" in out and "training.warmup_steps: warm-up (4 steps)" in out
    assert f"ok {exp}" in out
