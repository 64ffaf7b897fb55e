"""Data options: cleaning counts, holdout split, malformed-record policy, packing, masks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ftsweep.config.schema import DataBlock
from ftsweep.data.clean import clean_records, split_holdout
from ftsweep.data.records import BadRecordError, load_split_records
from ftsweep.launch.accel_config import accelerate_config
from ftsweep.worker.dataset import IGNORE, encode, pack
from tests.conftest import MODEL


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _data(**kw) -> dict:
    return DataBlock(**{"train": "x.jsonl", **kw}).model_dump()


def test_cleaning_counts_each_reason():
    recs = [
        {"instruction": "a\x07b", "output": "x"},
        {"instruction": "ab", "output": "x"},  # duplicate after control chars are stripped
        {"instruction": "c", "output": "   "},
        {"instruction": "d" * 50, "output": "y"},
        {"instruction": "e  \t f", "output": "z"},
    ]
    out, stats = clean_records(
        recs,
        "instruction",
        {
            "strip_control": True,
            "drop_empty": True,
            "drop_duplicates": True,
            "max_chars": 20,
            "normalize_whitespace": True,
        },
    )
    assert [r["instruction"] for r in out] == ["ab", "e f"]
    assert stats.as_dict() == {
        "kept": 2,
        "dropped_duplicate": 1,
        "dropped_empty": 1,
        "dropped_too_long": 1,
    }


def test_holdout_split_is_seeded_and_complementary():
    recs = [{"i": i} for i in range(100)]
    tr1, ev1 = split_holdout(recs, 0.1, seed=3)
    tr2, ev2 = split_holdout(recs, 0.1, seed=3)
    assert ev1 == ev2 and len(ev1) == 10 and len(tr1) == 90
    assert {r["i"] for r in tr1} | {r["i"] for r in ev1} == set(range(100))
    assert split_holdout(recs, 0.1, seed=4)[1] != ev1


def test_eval_fraction_serves_train_and_eval_from_one_file(tmp_path):
    f = _write(tmp_path / "t.jsonl", [{"instruction": f"q{i}", "output": "a"} for i in range(40)])
    data = _data(eval_fraction=0.25)
    train, c1 = load_split_records(data, {"data.train": str(f)}, "train")
    held, c2 = load_split_records(data, {"data.train": str(f)}, "eval")
    assert len(train) == 30 and len(held) == 10 and c1["kept"] == 30 and c2["kept"] == 10
    assert not {r["instruction"] for r in train} & {r["instruction"] for r in held}


def test_malformed_records_error_or_are_dropped_and_counted(tmp_path):
    f = _write(
        tmp_path / "t.jsonl",
        [{"instruction": "q", "output": "a"}, "{oops", {"instruction": "only"}],
    )
    with pytest.raises(BadRecordError, match=r"t\.jsonl:2: invalid JSON"):
        load_split_records(_data(), {"data.train": str(f)}, "train")
    recs, counts = load_split_records(_data(on_bad_record="drop"), {"data.train": str(f)}, "train")
    assert len(recs) == 1 and counts["malformed"] == 2


def test_csv_and_parquet_sources(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv = tmp_path / "t.csv"
    csv.write_text("instruction,input,output\nq1,,a1\nq2,x,a2\n")
    recs, _ = load_split_records(_data(), {"data.train": str(csv)}, "train")
    assert [r["output"] for r in recs] == ["a1", "a2"]
    pq.write_table(
        pa.Table.from_pylist([{"instruction": "q", "input": "", "output": "o"}]),
        tmp_path / "t.parquet",
    )
    recs, _ = load_split_records(_data(), {"data.train": str(tmp_path / "t.parquet")}, "train")
    assert recs[0]["output"] == "o"


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(MODEL)


def test_completion_only_loss_masks_the_prompt(tok):
    rec = {
        "instruction": "Reverse the order of the words.",
        "input": "cat dog",
        "output": "dog cat",
        "lang": "en",
    }
    masked = encode(rec, 0, "train", _data(), tok)
    full = encode(rec, 0, "train", _data(completion_only_loss=False), tok)
    n_target = sum(lab != IGNORE for lab in masked.labels)
    answer = tok(masked.reference, add_special_tokens=False)["input_ids"]
    assert n_target == len(answer) + 1  # the answer and EOS
    assert sum(lab != IGNORE for lab in full.labels) > n_target


def test_truncation_side(tok):
    rec = {"instruction": "word " * 40, "input": "", "output": "end", "lang": "en"}
    right = encode(rec, 0, "train", _data(max_length=16), tok)
    left = encode(rec, 0, "train", _data(max_length=16, truncation_side="left"), tok)
    assert len(right.input_ids) == len(left.input_ids) == 16
    assert left.input_ids[-1] == tok.eos_token_id and right.input_ids[-1] != tok.eos_token_id


def test_packing_keeps_every_token_and_mask(tok):
    recs = [
        {"instruction": f"say {w}", "input": "", "output": w, "lang": "en"}
        for w in ("red", "blue", "green", "cat", "dog")
    ]
    exs = [encode(r, i, "train", _data(), tok) for i, r in enumerate(recs)]
    blocks = pack(exs, 12)
    assert all(len(b.input_ids) == 12 for b in blocks[:-1])
    assert sum((b.input_ids for b in blocks), []) == sum((e.input_ids for e in exs), [])
    assert sum((b.labels for b in blocks), []) == sum((e.labels for e in exs), [])


def test_deepspeed_and_fsdp_accelerate_configs():
    cfg = {"training": {"precision": "bf16", "grad_accum": 4, "max_grad_norm": 1.0}}
    ds = accelerate_config(
        cfg,
        {"strategy": "deepspeed", "zero_stage": 2, "offload": True, "fsdp_sharding": "FULL_SHARD"},
        2,
    )
    assert ds["distributed_type"] == "DEEPSPEED" and ds["mixed_precision"] == "bf16"
    assert ds["deepspeed_config"]["offload_optimizer_device"] == "cpu"
    assert ds["deepspeed_config"]["offload_param_device"] == "none"  # ZeRO-2 keeps params
    assert ds["deepspeed_config"]["gradient_accumulation_steps"] == 4
    fsdp = accelerate_config(
        cfg,
        {"strategy": "fsdp", "zero_stage": 2, "offload": False, "fsdp_sharding": "SHARD_GRAD_OP"},
        4,
    )
    assert fsdp["distributed_type"] == "FSDP" and fsdp["num_processes"] == 4
    # FSDP2: SHARD_GRAD_OP keeps the parameters gathered after forward (no reshard)
    assert fsdp["fsdp_config"]["fsdp_version"] == 2
    assert fsdp["fsdp_config"]["fsdp_reshard_after_forward"] is False
    full = accelerate_config(
        cfg,
        {"strategy": "fsdp", "zero_stage": 2, "offload": False, "fsdp_sharding": "FULL_SHARD"},
        4,
    )
    assert full["fsdp_config"]["fsdp_reshard_after_forward"] is True


def test_duplicates_are_dropped_from_train_only(tmp_path):
    rows = [{"instruction": "q", "output": "a"}] * 3 + [{"instruction": "r", "output": "b"}]
    f = _write(tmp_path / "t.jsonl", rows)
    paths = {"data.train": str(f), "data.test": str(f)}
    data = _data(test="t.jsonl", clean={"drop_duplicates": True})
    train, counts = load_split_records(data, paths, "train")
    test, _ = load_split_records(data, paths, "test")
    assert len(train) == 2 and counts["dropped_duplicate"] == 2
    assert len(test) == 4  # a test set is scored as published


def test_hub_source_reads_the_named_splits(monkeypatch):
    """The hub path through `datasets` (no network here: load_dataset is replaced)."""
    import datasets

    calls = []

    def fake_load(name, config, split, revision):
        calls.append((name, config, split, revision))
        return [{"instruction": f"{split}-q", "output": "a"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    data = DataBlock(
        hub={"name": "org/set", "revision": "abc", "test_split": "validation"}
    ).model_dump()
    train, _ = load_split_records(data, {}, "train")
    test, _ = load_split_records(data, {}, "test")
    assert [r["instruction"] for r in train + test] == ["train-q", "validation-q"]
    assert calls == [("org/set", None, "train", "abc"), ("org/set", None, "validation", "abc")]


def test_data_block_needs_exactly_one_source():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="one of them"):
        DataBlock(train="a.jsonl", hub={"name": "org/set"})
    with pytest.raises(ValidationError, match="one of them"):
        DataBlock()


def test_validation_checks_what_the_worker_will_need(tmp_path):
    from ftsweep.data.records import check_file

    inst = _write(
        tmp_path / "i.jsonl",
        [
            {"id": "a", "instruction": "q", "output": 5},
            {"id": "a", "instruction": "q", "output": "x"},
        ],
    )
    found = dict(check_file(inst, "instruction", "error", evaluated=True))
    assert "output must be text" in found[1] and "duplicate id 'a'" in found[2]
    assert 2 not in dict(check_file(inst, "instruction", "error", evaluated=False))
    dia = _write(
        tmp_path / "d.jsonl",
        [
            {"conversations": [{"from": "bot", "value": "hi"}]},
            {
                "conversations": [
                    {"from": "human", "value": "hi"},
                    {"from": "gpt", "value": "yo"},
                    {"from": "human", "value": "bye"},
                ]
            },
        ],
    )
    found = dict(check_file(dia, "dialogue", "error", evaluated=True))
    assert "'bot'" in found[1] and "must end with a 'gpt' turn" in found[2]
    assert 2 not in dict(check_file(dia, "dialogue", "error", evaluated=False))
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(b'{"instruction": "\xff"}\n')
    assert check_file(bad, "instruction", "error")[0] == (
        1,
        "not UTF-8 text: byte 0xff at column 18 (save the file as UTF-8)",
    )
