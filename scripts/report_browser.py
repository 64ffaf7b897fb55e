"""Open an HTML report in headless Chromium, as a person would, and record what went wrong.

    python scripts/report_browser.py reports/grid/index.html --screenshot docs/img/report.png

Drives Debian's ``chromium`` (``apt-get install chromium``) through Playwright's Python
package, without Playwright's own browser download. Prints every console message of type
error or warning, every uncaught page error and every request the page made beyond its
own file, and exits 1 if there is any: a report is one self-contained file, so it must
load nothing and log nothing. ``tests/test_report_browser.py`` runs the same check.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The path of an installed Chromium, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


@dataclass
class PageCheck:
    """What a page did while it loaded: everything here but ``title`` should be empty."""

    title: str = ""
    console: list[str] = field(default_factory=list)  # "error: text" / "warning: text"
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions
    requests: list[str] = field(default_factory=list)  # URLs beyond the page itself
    broken_images: list[str] = field(default_factory=list)  # <img>/<svg> that drew nothing
    size: tuple[int, int] = (0, 0)  # scroll width, height of the document in CSS pixels

    @property
    def problems(self) -> list[str]:
        return (
            self.console
            + [f"page error: {e}" for e in self.page_errors]
            + [f"request: {u}" for u in self.requests]
            + [f"empty figure: {b}" for b in self.broken_images]
        )


# Every figure (inline SVG or <img>) must have drawn something: a box of non-zero size.
_FIGURES_JS = """() => [...document.querySelectorAll('svg, img')]
  .filter(e => !e.closest('svg') || e.tagName.toLowerCase() === 'svg')
  .filter(e => !(e.parentElement && e.parentElement.closest('svg')))
  .map((e, i) => {
    const r = e.getBoundingClientRect();
    const ok = e.tagName.toLowerCase() === 'img' ? (e.complete && e.naturalWidth > 0)
                                               : (r.width > 0 && r.height > 0);
    return ok ? null : (e.id || e.getAttribute('aria-label') || (e.tagName + '#' + i));
  }).filter(x => x !== null)"""


def check_page(
    html: Path,
    screenshot: Path | None = None,
    chromium: str | None = None,
    width: int = 1280,
    height: int = 900,
    full_page: bool = False,
) -> PageCheck:
    """Load ``html`` (a file) in headless Chromium and return what it did."""
    from playwright.sync_api import sync_playwright

    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)})")
    url = html.resolve().as_uri()
    check = PageCheck()
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox refuses to start.
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on(
                "console",
                lambda m: (
                    check.console.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: check.page_errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    check.requests.append(r.url)
                    if r.url != url and not r.url.startswith("data:")
                    else None
                ),
            )
            page.goto(url, wait_until="load")
            check.title = page.title()
            check.broken_images = list(page.evaluate(_FIGURES_JS))
            w, h = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            check.size = (int(w), int(h))
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=full_page)
        finally:
            browser.close()
    return check


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path, help="the report's index.html")
    ap.add_argument("--screenshot", type=Path, help="save a PNG of the first screen here")
    ap.add_argument("--full-page", action="store_true", help="screenshot the whole page")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args(argv)
    if not args.html.is_file():
        print(f"report_browser: {args.html}: no such file", file=sys.stderr)
        return 2
    check = check_page(args.html, args.screenshot, None, args.width, args.height, args.full_page)
    print(f"{args.html}: title {check.title!r}, {check.size[0]}x{check.size[1]} px")
    for problem in check.problems:
        print(f"  {problem}")
    return 1 if check.problems else 0


if __name__ == "__main__":
    sys.exit(main())
