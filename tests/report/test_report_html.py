"""The HTML shows exactly the JSON's numbers, escapes what users name, and asks for nothing."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import CLOCK, SERIES, seasonal_naive, usage_rows

from tokenplan.report import (
    Currency,
    build_report,
    render_html,
    report_to_dict,
    write_html,
    write_json,
)
from tokenplan.report import formatting as fmt
from tokenplan.report.html import CSP
from tokenplan.store import DuckDBStore

FORMATS = {
    "tokens": lambda v, _: fmt.tokens(v),
    "usd": lambda v, _: fmt.money(v),
    "money": fmt.money,
    "percent": lambda v, _: fmt.percent(v),
    "ratio": lambda v, _: fmt.ratio(v),
    "count": lambda v, _: fmt.count(v),
    "tpm": lambda v, _: fmt.per_minute(v),
}


class _Page(HTMLParser):
    """Collects tagged numbers, every start tag, and URL-bearing attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[tuple[dict[str, str | None], str]] = []
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.csp: list[str | None] = []
        self._open: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "meta" and dict(attrs).get("http-equiv") == "Content-Security-Policy":
            self.csp.append(dict(attrs).get("content"))
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "xlink:href", "poster", "data"):
                self.urls.append(value or "")
        if tag == "span" and dict(attrs).get("class") == "num":
            self._open, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            self.numbers.append((self._open, self._text))
            self._open = None


def _lookup(data: Any, path: str) -> Any:
    for key, index in re.findall(r"([A-Za-z_]\w*)|\[(\d+)\]", path):
        data = data[key] if key else data[int(index)]
    return data


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_every_number_on_the_page_is_the_json_number(store: DuckDBStore, tmp_path: Path) -> None:
    report = build_report(
        store, clock=lambda: CLOCK, forecaster=seasonal_naive, fx=Currency(code="CNY", rate=7.3)
    )
    html_path = write_html(report, tmp_path / "report.html")
    json_path = write_json(report, tmp_path / "report.json")
    data = json.loads(json_path.read_text())
    page = _parse(html_path.read_text())
    assert len(page.numbers) > 500
    code = data["currency"]["code"]
    for attrs, text in page.numbers:
        path, kind = str(attrs["data-path"]), str(attrs["data-kind"])
        value = _lookup(data, path)
        assert json.loads(str(attrs["data-value"])) == value, path
        assert text == FORMATS[kind](value, code), path
    shown = {str(a["data-path"]) for a, _ in page.numbers}
    for path in (
        "cards[0].value",
        "cards[0].value_local",
        "capacity.items[0].weekly[0].tokens",
        "capacity.items[0].weekly[0].cost_usd",
        "capacity.items[0].weekly[0].avg_daily_cost_usd",
        "capacity.items[0].weekly[0].avg_daily_cost_local",
        "capacity.items[0].weekly[0].peak_tokens",
        "capacity.items[0].daily[6].cost_local",
        "capacity.items[0].hourly[167].tokens",
        "breakdown.items[0].share",
    ):
        assert path in shown
    week = dict(_text_by_path(page))
    assert week["capacity.items[0].weekly[0].tokens"] == "66,990,000"
    assert week["capacity.items[0].weekly[0].cost_usd"] == "$261.87"
    assert week["capacity.items[0].weekly[0].avg_daily_cost_local"] == "273.09 CNY"
    assert week["capacity.items[0].weekly[0].peak_tokens"] == "1,100,000"


def _text_by_path(page: _Page) -> list[tuple[str, str]]:
    return [(str(a["data-path"]), t) for a, t in page.numbers]


def test_names_from_the_data_are_shown_as_text() -> None:
    evil = "<script>alert(1)</script>"
    team = '"><img src=x onerror=alert(2)>'
    store = DuckDBStore(":memory:")
    store.write(usage_rows(((evil, team, 100_000, Decimal(1)), *SERIES[:1])))
    html = render_html(build_report(store, clock=lambda: CLOCK, forecaster=seasonal_naive))
    page = _parse(html)
    assert "script" not in page.tags
    assert "img" not in page.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "onerror=alert(2)&gt;" in html
    assert not re.search(r"<script", html, re.IGNORECASE)


def test_page_is_self_contained(store: DuckDBStore) -> None:
    html = render_html(build_report(store, clock=lambda: CLOCK, forecaster=seasonal_naive))
    page = _parse(html)
    assert page.csp == [CSP]
    assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert page.urls == ["data:,"]  # the empty favicon, so the browser does not fetch one
    for needle in ("http://", "https://", "@import", "url(", "<script", "<iframe", "<object"):
        assert needle not in html.lower(), needle
    assert page.tags.count("svg") >= 4


@pytest.mark.parametrize(
    ("value", "text"),
    [(1234567.4, "1,234,567"), (None, "—"), (float("nan"), "—")],
)
def test_token_format(value: float | None, text: str) -> None:
    assert fmt.tokens(value) == text


def test_money_and_percent_formats() -> None:
    assert fmt.money(1234.5) == "$1,234.50"
    assert fmt.money(-3.456) == "-$3.46"
    assert fmt.money(10, "CNY") == "10.00 CNY"
    assert fmt.money(1_315_870.37) == "$1,315,870"  # cents are noise at this size
    assert fmt.per_minute(192_989_653.9) == "192,989,654"
    assert fmt.percent(0.2371) == "23.7%"
    assert fmt.compact(2_500_000) == "2.5M"
    assert fmt.compact(1_000) == "1k"


def test_json_has_no_nan(store: DuckDBStore) -> None:
    report = build_report(store, clock=lambda: CLOCK, forecaster=seasonal_naive)
    text = json.dumps(report_to_dict(report), allow_nan=False)
    assert '"horizon_hours": 168' in text
