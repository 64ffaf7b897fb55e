"""The tokenisation cache (ftsweep/worker/tokcache.py): a hit is exactly what encoding
gives, every input that changes the encoding changes the key, and a bad entry or an
unpinned input never fails or misleads a run."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pytest
from conftest import DATA, experiment_yaml

from ftsweep.config.load import load_experiment
from ftsweep.worker import setup
from ftsweep.worker.tokcache import DISABLE_ENV, TokenCache, pinned
from ftsweep.workspace import Workspace


@pytest.fixture(scope="module")
def tok():
    from conftest import MODEL
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL)


def _run(write_exp, tmp_path, text=None, name="exp.yaml"):
    exp = load_experiment(
        write_exp(
            text or experiment_yaml("tc", matrix="matrix:\n  method: [{name: lora, r: 4}]\n"), name
        )
    )
    (run,) = exp.runs
    return run, Workspace(tmp_path / "ws").run_dir("tc", run.run_id)


def _cache(run, rd):
    cache = TokenCache.for_run(rd, run.config, run.fingerprints)
    assert cache is not None
    return cache


def _load(run, cache, tok, split="train", limit=128):
    return setup.load_split(run.config, run.paths, split, tok, limit, cache)


def test_a_hit_is_exactly_what_encoding_gives_and_is_read_not_rebuilt(write_exp, tmp_path, tok):
    run, rd = _run(write_exp, tmp_path)
    cache = _cache(run, rd)
    fresh = _load(run, None, tok)
    first = _load(run, cache, tok)
    entry = cache.path("train", 128)
    assert entry.is_file() and entry.parent == tmp_path / "ws" / "cache" / "tokens"
    calls = []
    hit = cache.get_or_build("train", 128, lambda: calls.append(1) or fresh)
    assert calls == []  # read from disk, not encoded again
    for got in (first, hit):
        assert [asdict(e) for e in got[0]] == [asdict(e) for e in fresh[0]]
        assert got[1] == fresh[1]
    assert len(fresh[0]) == 128


def test_the_key_follows_every_input_of_the_encoding(write_exp, tmp_path):
    base_text = experiment_yaml("tc", matrix="matrix:\n  method: [{name: lora, r: 4}]\n")
    run, rd = _run(write_exp, tmp_path, base_text)
    key = _cache(run, rd).path("train", 128)
    # another method or learning rate: the same encoding, the same entry
    other, ord_ = _run(
        write_exp,
        tmp_path,
        base_text.replace("lr: 1.0e-3", "lr: 3.0e-3").replace("r: 4", "r: 8"),
        "b.yaml",
    )
    assert _cache(other, ord_).path("train", 128) == key
    assert _cache(run, rd).path("train", 64) != key  # another limit
    assert _cache(run, rd).path("eval", 128) != key  # another split
    for change in (
        ("max_length: 64", "max_length: 32"),
        ("family: instruction", "family: instruction\n  truncation_side: left"),
    ):
        r2, rd2 = _run(write_exp, tmp_path, base_text.replace(*change), "c.yaml")
        assert _cache(r2, rd2).path("train", 128) != key, change
    # the same content at another path is the same entry; other content is not
    copy = tmp_path / "train.jsonl"
    shutil.copy(DATA / "instruction" / "train.jsonl", copy)
    r3, rd3 = _run(
        write_exp,
        tmp_path,
        base_text.replace(f"{DATA}/instruction/train.jsonl", str(copy)),
        "d.yaml",
    )
    assert _cache(r3, rd3).path("train", 128) == key
    with copy.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"instruction": "one more", "output": "record"}) + "\n")
    r4, rd4 = _run(
        write_exp,
        tmp_path,
        base_text.replace(f"{DATA}/instruction/train.jsonl", str(copy)),
        "e.yaml",
    )
    assert _cache(r4, rd4).path("train", 128) != key


def test_a_damaged_entry_is_encoded_again_and_replaced(write_exp, tmp_path, tok):
    run, rd = _run(write_exp, tmp_path)
    cache = _cache(run, rd)
    fresh = _load(run, cache, tok)
    entry = cache.path("train", 128)
    entry.write_text('{"counts": {"kept": 1}, "examples": [["x", [1', encoding="utf-8")
    again = _load(run, cache, tok)
    assert [asdict(e) for e in again[0]] == [asdict(e) for e in fresh[0]]
    assert json.loads(entry.read_text(encoding="utf-8"))["counts"] == fresh[1]


def test_no_cache_for_unpinned_inputs_outside_a_workspace_or_when_disabled(
    write_exp, tmp_path, monkeypatch
):
    run, rd = _run(write_exp, tmp_path)
    assert pinned("sha256:ab") and pinned("hub:org/data/@v1.0")
    assert not pinned("hub:org/model@main")
    unpinned = {**run.fingerprints, "data.hub": "hub:org/data/@main"}
    assert TokenCache.for_run(rd, run.config, unpinned) is None
    from ftsweep.rundir import RunDir

    assert TokenCache.for_run(RunDir(tmp_path / "loose"), run.config, run.fingerprints) is None
    monkeypatch.setenv(DISABLE_ENV, "1")
    assert TokenCache.for_run(rd, run.config, run.fingerprints) is None
