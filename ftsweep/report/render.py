"""Rendering: view-models → Jinja templates → HTML / Markdown files.

The Jinja environment is sandboxed (templates cannot reach Python internals), uses
StrictUndefined (a missing value is an error, not an empty cell), autoescapes ``.html``
templates, and looks in the user's template dir before the packaged templates
(datasette's loader chain), so a user overrides a template by giving it the same name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    ChoiceLoader,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
)
from jinja2.sandbox import SandboxedEnvironment

from ftsweep.errors import FtsweepError
from ftsweep.report.numbers import fmt_interval, fmt_num, fmt_p, fmt_range

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
HTML_TEMPLATE = "index.html"
MD_TEMPLATE = "report.md"


class ReportError(FtsweepError):
    """A report that cannot be rendered; the message names the template or experiment."""

    exit_code = 2  # an unknown experiment or a broken user template: bad input


def md_escape(value: Any) -> str:
    """Make any value safe inside a Markdown table cell (no |, no raw HTML, one line)."""
    text = str(value)
    for raw, safe in (
        ("\\", "\\\\"),
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("|", "\\|"),
        ("`", "\\`"),
        ("*", "\\*"),
        ("_", "\\_"),
        ("[", "\\["),
        ("]", "\\]"),
    ):
        text = text.replace(raw, safe)
    return " ".join(text.split())


def _autoescape(name: str | None) -> bool:
    # .html (and .htm/.xml) are escaped; Markdown is not HTML and uses the md filter.
    return name is None or name.rsplit(".", 1)[-1].lower() in ("html", "htm", "xml")


# Options that change the code a template compiles to (set in one place, make_env);
# the bytecode cache's file names carry a hash of this module, so a compiled template is
# never reused after they change.
_OPTIONS: dict[str, Any] = dict(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _bytecode_cache(directory: Path | None) -> BytecodeCache | None:
    """Compiled templates kept between reports: compiling the report's ~40 templates is
    ~0.4 s of every ``ftsweep report`` otherwise. Jinja keys each entry by the template's
    file and checks its source's checksum, so an edited or user-overridden template is
    recompiled. Its default directory (None here) is a per-user one in the temp dir,
    which Jinja creates with mode 0700 and refuses if another user owns it; where no
    such directory can be made, templates are compiled each time."""
    try:
        if directory is not None:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # this module's source stands for the options and autoescape rule it sets
        salt = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:12]
        return FileSystemBytecodeCache(
            None if directory is None else str(directory), f"ftsweep-report-{salt}-%s.cache"
        )
    except (OSError, RuntimeError):
        return None


def make_env(
    template_dir: Path | None = None, bytecode_dir: Path | None = None
) -> SandboxedEnvironment:
    """The report's Jinja environment; ``template_dir`` (if any) wins over the package.

    ``bytecode_dir``: where compiled templates are kept (None: Jinja's per-user default).
    """
    loaders = [FileSystemLoader(str(template_dir))] if template_dir is not None else []
    loaders.append(FileSystemLoader(str(PACKAGE_TEMPLATES)))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        **_OPTIONS,
        bytecode_cache=_bytecode_cache(bytecode_dir),
    )
    # one number format for every template (numbers.py); "stat" is mean [95% interval] (n)
    env.filters.update(md=md_escape, num=fmt_num, stat=fmt_interval, range=fmt_range, pval=fmt_p)
    return env


def render_template(env: SandboxedEnvironment, name: str, **context: Any) -> str:
    """Render one template; any template problem becomes a ``ReportError`` naming it."""
    try:
        return env.get_template(name).render(**context)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)  # syntax and sandbox errors carry one
        where = f" (line {lineno})" if lineno else ""
        raise ReportError(f"template {name}{where}: {exc}") from exc
