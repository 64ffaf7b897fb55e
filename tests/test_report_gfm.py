"""report.md is GitHub-flavoured Markdown as GitHub renders it: every table a real table
(as many cells in each row as in its header), no raw HTML, nothing left of Jinja.

Parsed by markdown-it-py (CommonMark plus GFM tables) on the report of a small real
workspace: run directories ingested into the store, with forgetting scores, a failed
run with markup and pipes in its cause, and a diff against a second experiment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from test_store import fabricate_experiment, make_run

from ftsweep.report import render_report
from ftsweep.rundir import RESULT
from ftsweep.workspace import Workspace

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _cells(line: str) -> int:
    """Cells in a GFM table row: unescaped pipes split it; outer pipes are optional."""
    text = line.strip()
    text = text[1:] if text.startswith("|") else text
    text = text[:-1] if text.endswith("|") and not text.endswith("\\|") else text
    return len(_UNESCAPED_PIPE.split(text))


def check_gfm(text: str) -> int:
    """Assert ``text`` is clean GFM; return the number of tables."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    tokens = md.parse(text)
    lines = text.splitlines()
    raw = [t for t in tokens if t.type == "html_block"]
    raw += [
        c for t in tokens if t.type == "inline" for c in t.children or [] if c.type == "html_inline"
    ]
    assert not raw, f"raw HTML in report.md: {[t.content for t in raw][:3]}"
    tables = [t for t in tokens if t.type == "table_open"]
    for table in tables:
        assert table.map is not None
        start, end = table.map
        rows = [ln for ln in lines[start:end] if ln.strip()]
        header = _cells(rows[0])
        for ln in rows[1:]:
            assert _cells(ln) == header, f"report.md:{start + 1}: row has another cell count: {ln}"
    # every line that looks like a table row belongs to a parsed table
    in_tables = {i for t in tables if t.map for i in range(*t.map)}
    stray = [i + 1 for i, ln in enumerate(lines) if ln.startswith("|") and i not in in_tables]
    assert not stray, f"report.md lines {stray[:5]} look like table rows but are not in a table"
    assert "{{" not in text and "{%" not in text
    return len(tables)


def _add_forgetting(ws: Workspace, experiment: str) -> None:
    for rd in ws.iter_run_dirs():
        if rd.path.parent.name != experiment or not rd.file(RESULT).exists():
            continue
        result = json.loads(rd.file(RESULT).read_text())
        lost = 0.0 if rd.run_id.startswith("base") else 0.1 + 0.01 * len(rd.run_id)
        result["final_eval"].update(
            forgetting=lost, probe_loss_before=1.0, probe_loss_after=1.0 + lost
        )
        rd.file(RESULT).write_text(json.dumps(result))


@pytest.fixture(scope="module")
def report_md(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("gfm")
    ws = Workspace(root / "ws")
    fabricate_experiment(ws, "before")
    for seed in (0, 1):
        make_run(ws, "after", "lora", seed, {"r": 8, "v": 2})
        make_run(ws, "after", "base", seed, {"v": 2})
    make_run(ws, "after", "lora", 9, {"r": 99}, state="failed")
    _add_forgetting(ws, "after")
    paths = render_report(ws, "after", root / "out", against="before")
    (md,) = [p for p in paths if p.name == "report.md"]
    return md.read_text(encoding="utf-8")


def test_report_md_is_clean_gfm(report_md: str):
    assert "## Forgetting" in report_md and "## Against before" in report_md
    assert "CUDA out of memory" in report_md  # the failed run, its markup escaped
    assert check_gfm(report_md) >= 6


def test_the_check_catches_what_github_would_break():
    good = "| a | b |\n|---|---|\n| 1 | 2 \\| 3 |\n"
    assert check_gfm(good) == 1
    with pytest.raises(AssertionError, match="another cell count"):
        check_gfm("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n")
    with pytest.raises(AssertionError, match="raw HTML"):
        check_gfm("text <b>bold</b>\n")
    with pytest.raises(AssertionError, match="not in a table"):
        check_gfm("| a | b |\n| 1 | 2 |\n")  # no delimiter row: a paragraph on GitHub


def test_search_report_md_is_clean_gfm(tmp_path: Path):
    from test_report_search import EM, EXP, SINGLE, make_search

    ws = Workspace(tmp_path / "ws")
    make_search(ws, EXP, SINGLE, [EM])
    paths = render_report(ws, EXP, tmp_path / "out")
    (md,) = [p for p in paths if p.name == "report.md"]
    text = md.read_text(encoding="utf-8")
    assert "Search" in text
    assert check_gfm(text) >= 5
