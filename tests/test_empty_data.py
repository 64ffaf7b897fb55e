"""A train file with no usable records is refused by validation, before any run
directory exists (issue 8, item 18: it passed `validate` and failed at run time)."""

from __future__ import annotations

from conftest import DATA, experiment_yaml

from ftsweep.cli import main


def _exp(write_exp, tmp_path, train_text: str, extra: str = "") -> str:
    train = tmp_path / "train.jsonl"
    train.write_text(train_text)
    text = experiment_yaml().replace(f"{DATA}/instruction/train.jsonl", str(train))
    return str(write_exp(text.replace("data:\n", f"data:\n{extra}", 1)))


def test_an_empty_train_file_is_refused_before_any_run_dir(write_exp, tmp_path, capsys):
    ws = tmp_path / "ws"
    path = _exp(write_exp, tmp_path, "")
    assert main(["--workspace", str(ws), "validate", path]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"data.train: {tmp_path / 'train.jsonl'}: no usable records (the file is empty)" in err
    assert main(["--workspace", str(ws), "launch", path]) == 2
    assert not list(ws.rglob("spec.json")) and not (ws / "runs").exists()


def test_a_train_file_whose_records_are_all_dropped_is_refused(write_exp, tmp_path, capsys):
    lines = '{"instruction": "a", "output": "  "}\n{"broken\n'
    path = _exp(write_exp, tmp_path, lines, extra="  on_bad_record: drop\n")
    assert main(["--workspace", str(tmp_path / "ws"), "validate", path]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no usable records (dropped: 1 dropped_empty, 1 malformed)" in err


def test_plan_runs_the_deep_checks_only_when_asked(write_exp, tmp_path, capsys):
    """`plan` answers from the file alone (seconds less: no torch); `plan --check` also
    runs validate's deep checks, such as this one, and says when it did not."""
    ws = tmp_path / "ws"
    path = _exp(write_exp, tmp_path, "")
    assert main(["--workspace", str(ws), "plan", path]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "not checked" in out and "plan --check" in out
    assert main(["--workspace", str(ws), "plan", "--check", path]) == 2
    assert "no usable records" in " ".join(capsys.readouterr().err.split())
