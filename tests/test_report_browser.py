"""The HTML report as a person sees it: opened in real headless Chromium.

Each report (a grid sweep, and a search with its sections) must load without a console
error or warning, without an uncaught exception, without a single request beyond its own
file, and with every figure drawn. A screenshot of each is saved (under the test's temp
directory, or ``$FTSWEEP_SCREENSHOT_DIR`` when set) and checked not to be blank.

Needs Debian's ``chromium`` and the ``playwright`` package (a dev extra). They are skipped
where missing, except under ``FTSWEEP_REQUIRE_CHROMIUM=1`` (CI sets it), where a missing
browser fails the test instead of hiding it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from test_report_search import EM, SINGLE, make_search
from test_store import fabricate_experiment

from ftsweep.report import render_report
from ftsweep.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from report_browser import check_page, find_chromium  # noqa: E402


def _why_not() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return "Chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _browser() -> None:
    why = _why_not()
    if why is not None:
        if os.environ.get("FTSWEEP_REQUIRE_CHROMIUM"):
            pytest.fail(f"FTSWEEP_REQUIRE_CHROMIUM is set but {why}")
        pytest.skip(why)


def _shot_path(tmp_path: Path, name: str) -> Path:
    where = os.environ.get("FTSWEEP_SCREENSHOT_DIR")
    return (Path(where) if where else tmp_path) / f"{name}.png"


def _not_blank(png: Path) -> float:
    """The spread of the screenshot's pixel values (0 for a blank page)."""
    from matplotlib.image import imread

    pixels = imread(str(png))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    return float(pixels[..., :3].std())


def test_the_checker_catches_errors_requests_and_empty_figures(tmp_path: Path) -> None:
    """The check can fail: a page that logs, throws, fetches and draws nothing is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><head><title>bad</title></head><body>"
        "<script>console.error('boom'); console.warn('careful')</script>"
        "<script>undefinedFunction()</script>"
        "<img src='https://example.invalid/x.png' alt='remote'>"
        "<svg id='empty' width='0' height='0'></svg>"
        "</body></html>",
        encoding="utf-8",
    )
    check = check_page(page)
    assert "error: boom" in check.console and "warning: careful" in check.console
    assert any("undefinedFunction" in e for e in check.page_errors)
    assert check.requests == ["https://example.invalid/x.png"]
    assert "empty" in check.broken_images
    good = tmp_path / "good.html"
    good.write_text("<!doctype html><title>ok</title><p>fine</p>", encoding="utf-8")
    assert check_page(good).problems == []


@pytest.mark.parametrize("kind", ["grid", "search"])
def test_report_loads_cleanly_in_chromium(tmp_path: Path, kind: str) -> None:
    ws = Workspace(tmp_path / "ws")
    if kind == "grid":
        fabricate_experiment(ws, kind)
    else:
        make_search(ws, kind, SINGLE, [EM])
    paths = render_report(ws, kind, tmp_path / "out", None)
    (html,) = [p for p in paths if p.name == "index.html"]
    shot = _shot_path(tmp_path, f"report-{kind}")
    check = check_page(html, screenshot=shot, full_page=True)
    assert check.problems == [], "\n".join(check.problems)
    assert kind in check.title
    # The page lays out within a laptop's width: wide tables scroll inside their own box.
    assert check.size[0] <= 1280, f"page is {check.size[0]} px wide"
    assert check.size[1] > 900  # a full report, not an error page
    assert _not_blank(shot) > 0.05
