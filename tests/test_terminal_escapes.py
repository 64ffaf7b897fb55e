"""Names and values from files never drive the terminal: control and format characters
are shown as escapes in `plan` and `status` (issue 8, item 5)."""

from __future__ import annotations

from conftest import experiment_yaml

from ftsweep.cli import main
from ftsweep.config.load import load_experiment
from ftsweep.rundir import SPEC, atomic_write_json
from ftsweep.workspace import Workspace

# Clear the screen, set the window title, then reverse the text that follows.
NASTY = "x\x1b[2J\x1b]0;pwned\x07\u202ey"


def _assert_inert(out: str) -> None:
    for raw in ("\x1b[2J", "\x1b]0;", "\x07", "\u202e"):
        assert raw not in out
    assert "\\x1b[2J" in out.replace("\n", "") or "\\x1b" in out


def test_plan_shows_control_characters_in_an_experiment_name_escaped(write_exp, tmp_path, capsys):
    name = '"x\\e[2J\\e]0;pwned\\a\\u202Ey"'  # YAML escapes for NASTY
    path = write_exp(experiment_yaml(name=name))
    assert main(["--workspace", str(tmp_path / "ws"), "plan", str(path)]) == 0
    out = capsys.readouterr().out
    _assert_inert(out)
    assert "\\u202e" in out


def test_status_shows_control_characters_in_run_dirs_escaped(write_exp, tmp_path, capsys):
    run = load_experiment(write_exp(experiment_yaml()), deep=False).runs[0]
    ws = Workspace(tmp_path / "ws")
    rd = ws.run_dir("evil", run.run_id)
    rd.path.mkdir(parents=True)
    spec = run.to_json()
    spec.update(experiment=NASTY, method=NASTY, params={"k": NASTY})
    atomic_write_json(rd.file(SPEC), spec)
    assert main(["--workspace", str(ws.root), "status"]) == 0
    out = capsys.readouterr().out
    _assert_inert(out)
    assert "pwned" in out  # shown, not swallowed
