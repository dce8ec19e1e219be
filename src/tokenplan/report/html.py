"""Render a `Report` as one self-contained HTML file: inline CSS and SVG, strict CSP, no requests.

Every number is written through `num`, which tags it with ``data-path`` (where it lives in the
JSON) and ``data-value``: the tests check the page shows exactly what the JSON holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from tokenplan import __version__
from tokenplan.report import charts
from tokenplan.report import formatting as fmt
from tokenplan.report.model import Report
from tokenplan.untrusted import visible

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_FORMATS = {
    "tokens": lambda v, code: fmt.tokens(v),
    "usd": lambda v, code: fmt.money(v, "USD"),
    "money": lambda v, code: fmt.money(v, code),
    "percent": lambda v, code: fmt.percent(v),
    "ratio": lambda v, code: fmt.ratio(v),
    "count": lambda v, code: fmt.count(v),
    "tpm": lambda v, code: fmt.per_minute(v),
}


def num(value: Any, path: str, kind: str = "count", code: str = "USD") -> Markup:
    """One number as ``<span data-path data-value>formatted</span>``."""
    text = _FORMATS[kind](value, code)
    raw = "null" if value is None else json.dumps(value)
    return Markup(
        f'<span class="num" data-path="{escape(path)}" data-kind="{escape(kind)}" '
        f'data-value="{escape(raw)}">{escape(text)}</span>'
    )


def _shown(value: Any) -> Any:
    """Text as the page shows it: bidi, zero-width and control characters as escapes.

    Autoescape stops markup; this stops a model name that reads as another (``a\u202eb``).
    Markup (numbers, charts) is already built from shown text and passes unchanged.
    """
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("tokenplan.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    env.globals.update(num=num, charts=charts, fmt=fmt, csp=CSP, version=__version__)
    return env


def render_html(report: Report) -> str:
    """The report as a complete HTML document."""
    return _environment().get_template("report.html.j2").render(r=report)


def write_html(report: Report, path: str | Path) -> Path:
    """Write the report's HTML file and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(report), encoding="utf-8")
    return target
