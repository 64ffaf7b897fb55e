"""Your own data: field mapping, templates, mixtures and code records without tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftsweep.config.load import load_experiment
from ftsweep.config.schema import DataBlock, FieldMap
from ftsweep.data.records import check_file, load_split_records
from ftsweep.errors import ConfigError
from tests.conftest import MODEL


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
    assert "needs query, response" in found[3]


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
