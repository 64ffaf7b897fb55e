"""The CLI surface: help for every command, exit codes, JSON output, escaping."""

from __future__ import annotations

import json

import pytest

from ftsweep.cli import build_parser, main


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_every_command_has_help_text():
    for name, sub in _subcommands().items():
        assert sub.description and len(sub.description.strip()) > 10, name
        assert sub.format_help().strip(), name


@pytest.mark.parametrize(
    "name",
    [
        "validate",
        "plan",
        "launch",
        "status",
        "query",
        "report",
        "ingest",
        "methods",
        "export",
        "evaluate",
        "schema",
    ],
)
def test_documented_commands_exist(name):
    assert name in _subcommands()


def test_methods_json_lists_params_and_defaults(capsys):
    assert main(["methods", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"base", "full", "lora", "prefix"} <= set(rows)
    assert rows["lora"]["params"]["r"]["default"] == 8


def test_query_refuses_writes_with_exit_code_2(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    assert main(["--workspace", ws, "query", "select 1 as one", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"one": 1}]
    assert main(["--workspace", ws, "query", "create table x(a int)"]) == 2
    assert "read-only" in capsys.readouterr().err


def test_status_on_an_empty_workspace(tmp_path, capsys):
    assert main(["--workspace", str(tmp_path / "ws"), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_missing_file_is_a_clean_error(tmp_path, capsys):
    assert main(["--workspace", str(tmp_path), "validate", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err
