"""Hostile or broken input files get a bounded, located refusal (issue 8, items 3 and 5)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftsweep.cli import main
from ftsweep.config.yamlpos import MAX_ALIASES, load_yaml
from ftsweep.data.records import BadRecordError, check_file, load_split_records
from ftsweep.errors import ConfigError

# Nine levels of nine aliases, the shape of the 316-byte file: 342 bytes that
# name 9**9 (387 million) strings.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def _problem(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    (problem,) = caught.value.problems
    return problem.format()


def test_the_alias_bomb_is_refused_quickly_and_in_little_memory(tmp_path):
    assert len(ALIAS_BOMB.encode()) < 400
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    # In a child capped at 1 GiB of address space and 60 s: before the fix it took
    # 6.5 GB and minutes.
    code = (
        "import resource, sys; from pathlib import Path\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({1 << 30}, {1 << 30}))\n"
        "from ftsweep.config.yamlpos import load_yaml\n"
        "from ftsweep.errors import ConfigError\n"
        "try:\n"
        "    load_yaml(Path(sys.argv[1]))\n"
        "except ConfigError as exc:\n"
        "    print(exc.problems[0].format())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Line 6 is where the expansion first passes the bound (9**6 > 100,000).
    assert f"{bomb}:6:" in done.stdout and "refusing to expand" in done.stdout


def test_the_alias_bomb_exits_2_through_the_cli(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert main(["--workspace", str(tmp_path), "validate", str(bomb)]) == 2
    assert f"{bomb}:6:" in capsys.readouterr().err.replace("\n", "")


def test_too_many_aliases_are_refused_at_the_first_one_too_many(tmp_path):
    lines = ["base: &b 1"] + [f"k{i}: *b" for i in range(MAX_ALIASES + 5)]
    path = tmp_path / "many.yaml"
    path.write_text("\n".join(lines) + "\n")
    text = _problem(path)
    assert f"{path}:{MAX_ALIASES + 2}:" in text and f"more than {MAX_ALIASES} aliases" in text


def test_a_self_containing_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("x: 1\nloop: &l [1, *l]\n")
    assert _problem(path).startswith(f"{path}:2:")


def test_ordinary_anchors_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(
        textwrap.dedent("""\
        common: &c {lr: 0.001, steps: 10}
        a: *c
        b: [*c, {steps: 20}]
        """)
    )
    data, pos = load_yaml(path)
    assert data["a"] == {"lr": 0.001, "steps": 10} and data["b"][0] is data["a"]
    assert pos.line(("b",)) == 3


def test_a_non_utf8_experiment_file_exits_2_with_its_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"experiment: t\nmodel:\n  path: caf\xe9\n")
    assert _problem(path) == (
        f"{path}:3: <top level>: not UTF-8 text: byte 0xe9 at column 12; save the file as UTF-8"
    )
    assert main(["--workspace", str(tmp_path), "validate", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


# --- invalid UTF-8 in data: the record's own line -----------------------------------

GOOD = {"instruction": "q", "output": "a"}
DATA = {
    "family": "instruction",
    "on_bad_record": "error",
    "eval_fraction": None,
    "clean": {"drop_duplicates": False},
    "hub": None,
}


def _jsonl_with_bad_line(path: Path, bad_line: int, total: int) -> Path:
    lines = [json.dumps(GOOD).encode() for _ in range(total)]
    lines[bad_line - 1] = b'{"instruction": "caf\xe9", "output": "a"}'
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_invalid_utf8_in_jsonl_is_reported_at_its_line(tmp_path):
    # Far enough in that a text reader (8 KiB chunks) failed on an earlier line.
    path = _jsonl_with_bad_line(tmp_path / "t.jsonl", 300, 400)
    ((line, reason),) = check_file(path, "instruction", "error")
    assert line == 300 and "not UTF-8 text: byte 0xe9 at column 21" in reason
    with pytest.raises(BadRecordError, match=r"t\.jsonl:300: not UTF-8"):
        load_split_records(DATA, {"data.train": str(path)}, "train")


def test_invalid_utf8_in_jsonl_is_dropped_and_counted_under_drop(tmp_path):
    path = _jsonl_with_bad_line(tmp_path / "t.jsonl", 2, 4)
    records, counts = load_split_records(
        {**DATA, "on_bad_record": "drop"}, {"data.train": str(path)}, "train"
    )
    assert counts["malformed"] == 1 and len(records) == 3


def test_invalid_utf8_in_csv_is_reported_at_the_line_its_row_starts(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'instruction,output\nq,a\n"two\nlines",a\nq,caf\xe9\nq,a\n')
    found = check_file(path, "instruction", "error")
    assert found == [(5, "not UTF-8 text: byte 0xe9 at field 'output' (save the file as UTF-8)")]


def test_invalid_utf8_in_json_is_reported_at_its_line(tmp_path):
    path = tmp_path / "t.json"
    path.write_bytes(
        b'[\n{"instruction": "q", "output": "a"},\n{"instruction": "\xff", "output": "a"}\n]'
    )
    assert check_file(path, "instruction", "error") == [
        (3, "not UTF-8 text: byte 0xff at column 18 (save the file as UTF-8)")
    ]
    with pytest.raises(BadRecordError, match=r"t\.json:3: not UTF-8"):
        load_split_records(DATA, {"data.train": str(path)}, "train")
