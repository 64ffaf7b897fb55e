"""`ftsweep query` runs exactly one statement and can be given a time limit (issue 8,
item 5: "a; b" silently dropped a's rows, and a runaway query ran forever)."""

from __future__ import annotations

import json
import time

import pytest

from ftsweep.cli import main


def test_several_statements_are_refused_with_exit_2(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    assert main(["--workspace", ws, "query", "select 1 as a; select 2 as b"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "2 SQL statements given" in err and "runs one" in err
    # One statement with a trailing semicolon, or a ';' inside a string, is one statement.
    assert main(["--workspace", ws, "query", "select ';' as s;", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"s": ";"}]
    assert main(["--workspace", ws, "query", "  ;  "]) == 2
    assert "no SQL statement" in capsys.readouterr().err


def test_timeout_stops_a_long_query_with_a_clear_error(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    t0 = time.monotonic()
    assert (
        main(
            [
                "--workspace",
                ws,
                "query",
                "--timeout",
                "0.5",
                "select count(*) from range(100000000000) a",
            ]
        )
        == 2
    )
    assert time.monotonic() - t0 < 30  # without the timeout: hours
    err = " ".join(capsys.readouterr().err.split())
    assert "ran longer than --timeout 0.5 s and was stopped" in err
    # A query that finishes in time is unaffected.
    assert main(["--workspace", ws, "query", "--timeout", "30", "select 1 as one", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"one": 1}]


def test_timeout_must_be_a_positive_number(tmp_path, capsys):
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(SystemExit) as caught:
            main(["query", "--timeout", bad, "select 1"])
        assert caught.value.code == 2
        assert "seconds above 0" in capsys.readouterr().err
