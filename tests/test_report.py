"""Reports: view-models, statistics, rendering, template overrides and escaping."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from test_store import fabricate_experiment  # run-directory fabricator shared with the store

from ftsweep.report import ReportError, render_report
from ftsweep.report.render import md_escape
from ftsweep.report.stats import paired_sign_flip_p, summarize
from ftsweep.report.viewmodel import build_view, higher_is_better
from ftsweep.workspace import Workspace

XSS = "<script>alert(1)</script>"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    fabricate_experiment(workspace, "grid")
    return workspace


def _read(paths: list[Path], name: str) -> str:
    (path,) = [p for p in paths if p.name == name]
    return path.read_text(encoding="utf-8")


# -- statistics and view-models (pure) ----------------------------------------------------


def test_summarize() -> None:
    s = summarize([1.0, 3.0, None, float("nan")])
    assert (s.mean, s.n) == (2.0, 2) and s.std == pytest.approx(2**0.5)
    assert summarize([5.0]).std is None and summarize([]).mean is None


def test_paired_sign_flip_exact_and_deterministic() -> None:
    assert paired_sign_flip_p([1.0] * 5) == pytest.approx(2 / 32)  # only ±all-ones as extreme
    assert paired_sign_flip_p([0.0, 0.0]) == 1.0
    assert paired_sign_flip_p([]) is None
    diffs = [0.1 * ((i % 7) - 2) for i in range(60)]
    p = paired_sign_flip_p(diffs)
    assert p == paired_sign_flip_p(diffs) and p is not None and 0 < p <= 1


def test_direction_fallback_and_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ftsweep.evaluators", types.ModuleType("ftsweep.evaluators"))
    assert higher_is_better("accuracy") and not higher_is_better("eval_loss")
    assert not higher_is_better("perplexity")
    fake = types.ModuleType("ftsweep.evaluators")
    fake.metric_direction = lambda name: {"accuracy": False}.get(name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ftsweep.evaluators", fake)
    assert not higher_is_better("accuracy") and not higher_is_better("loss")


def _run(run_id: str, method: str, params: dict[str, object], metric: str) -> dict[str, object]:
    return {
        "run_id": run_id,
        "method": method,
        "status": "complete",
        "params": params,
        "config": {"eval": {"primary_metric": metric, "split": "val"}},
        "fingerprints": {},
        "provenance": {},
        "trainable_params": 1,
        "trainable_pct": 1.0,
        "peak_memory_mb": 1.0,
        "wall_time_s": 1.0,
        "tokens_per_s": 1.0,
        "failure_cause": None,
        "failure_log_tail": None,
    }


def test_view_picks_best_config_by_direction() -> None:
    runs = [
        _run("a", "lora", {"r": 8}, "eval_loss"),
        _run("b", "lora", {"r": 16}, "eval_loss"),
        _run("c", "base", {}, "eval_loss"),
    ]
    evals = [
        {"run_id": "a", "metric": "eval_loss", "value": 2.0},
        {"run_id": "b", "metric": "eval_loss", "value": 1.0},
        {"run_id": "c", "metric": "eval_loss", "value": 3.0},
    ]
    examples = [
        {"run_id": r, "example_id": f"e{i}", "value": v + i}
        for r, v in (("b", 0.0), ("c", 1.0))
        for i in range(4)
    ]
    view = build_view("x", runs, evals, [], examples)
    assert [(r.method, r.config) for r in view.leaderboard] == [("lora", "r=16"), ("base", "—")]
    (pair,) = view.pairs
    assert (pair.a, pair.b, pair.diff) == ("lora", "base", -2.0)
    assert pair.n_examples == 4 and pair.p_value == pytest.approx(2 / 16)
    assert pair.p_holm == pair.p_value  # a family of one: Holm changes nothing
    # one seed each: no seed interval, so no claim, however the examples look
    assert pair.intervals_separate is None and pair.better is None
    assert pair.verdict.startswith("no detectable difference at n = 4 examples, 1 seed")
    assert [(e.param, e.value) for e in view.effects] == [("r", "16"), ("r", "8")]


def test_md_escape() -> None:
    assert md_escape("a|b<c>\nd") == "a\\|b&lt;c&gt; d"


# -- rendering ----------------------------------------------------------------------------


def test_report_renders_html_and_markdown(ws: Workspace, tmp_path: Path) -> None:
    paths = render_report(ws, "grid", tmp_path / "out", None)
    assert sorted(p.name for p in paths) == ["index.html", "report.md"]
    assert all(p.parent == tmp_path / "out" for p in paths)
    html, md = _read(paths, "index.html"), _read(paths, "report.md")
    for method in ("base", "lora", "full"):
        assert f"<td>{method}</td>" in html and f"| {method} |" in md
    # two training curves and the Pareto figure (the fabricated configs record no lr)
    assert html.count("<svg") == 3 and "CUDA out of memory" in html
    assert "sign-flip permutation test" in html and "provenance.host" in md
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert ids and len(ids) == len(set(ids))  # inlined SVGs must not share ids
    assert "CUDA out of memory &lt;b&gt;\\|x\\|&lt;/b&gt;" in md


def test_report_default_location_and_all_experiments(ws: Workspace, tmp_path: Path) -> None:
    fabricate_experiment(ws, "second", methods=("base", "lora"))
    paths = render_report(ws, None, None, None)
    assert {p.parent for p in paths} == {ws.reports_dir / "grid", ws.reports_dir / "second"}
    with pytest.raises(ReportError, match="nope"):
        render_report(ws, "nope", tmp_path, None)


def test_html_is_self_contained(ws: Workspace, tmp_path: Path) -> None:
    html = _read(render_report(ws, "grid", tmp_path, None), "index.html")
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"<link\b|@import|url\(\s*['\"]?https?:", html, re.I)
    assert "<script" not in html.lower()


def test_user_supplied_names_are_escaped(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    fabricate_experiment(ws, XSS, methods=("base", XSS))
    paths = render_report(ws, XSS, None, None)
    assert all(p.parent.parent == ws.reports_dir for p in paths)  # sanitised directory name
    html, md = _read(paths, "index.html"), _read(paths, "report.md")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in md and "<script" not in md


def test_user_template_dir_overrides(ws: Workspace, tmp_path: Path) -> None:
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "index.html").write_text("CUSTOM {{ view.experiment }} {{ view.leaderboard | length }}")
    paths = render_report(ws, "grid", tmp_path / "out", tpl)
    assert _read(paths, "index.html") == "CUSTOM grid 3"
    assert "## Leaderboard" in _read(paths, "report.md")  # not overridden: package template


@pytest.mark.parametrize(
    "body,match",
    [
        ("{{ view.no_such_field }}", "no_such_field"),
        ("{{ missing_variable }}", "missing_variable"),
        ("{{ view.__class__.__mro__ }}", "template index.html"),  # sandbox: no internals
    ],
)
def test_template_errors_are_loud(ws: Workspace, tmp_path: Path, body: str, match: str) -> None:
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "index.html").write_text(body)
    with pytest.raises(ReportError, match=match):
        render_report(ws, "grid", tmp_path / "out", tpl)
