"""The report as a person sees it: headless Chromium draws the charts, logs no errors, and the
page requests nothing but itself."""

from __future__ import annotations

import struct
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from headless_chromium import PageRun, chromium, chromium_path

# At import, not in a fixture: by setup time `conftest` may be another folder's.
from report_fixtures import CLOCK, seasonal_naive, usage_rows

from tokenplan.report import Currency, build_report, write_html
from tokenplan.store import DuckDBStore


class _Quiet(SimpleHTTPRequestHandler):
    """Serves the folder and records every path asked for."""

    seen: list[str]

    def log_message(self, format: str, *args: object) -> None:
        self.seen.append(self.path)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[PageRun, list[str], str]:
    """The report loaded once over loopback HTTP (the tests below check different things)."""
    if chromium_path() is None:
        pytest.fail("chromium is not installed: run `make system-deps` (apt-get install chromium).")

    root = tmp_path_factory.mktemp("site")
    store = DuckDBStore(":memory:")
    store.write(usage_rows())
    report = build_report(
        store, clock=lambda: CLOCK, forecaster=seasonal_naive, fx=Currency(code="CNY", rate=7.3)
    )
    write_html(report, root / "report.html")
    seen: list[str] = []
    handler = type("Handler", (_Quiet,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/report.html"
    try:
        with chromium(tmp_path_factory.mktemp("chromium")) as browser:
            run = browser.load(url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    return run, seen, url


def test_charts_draw(rendered: tuple[PageRun, list[str], str]) -> None:
    run, _, _ = rendered
    ids = {s["id"] for s in run.svgs}
    assert {"fan-total", "fan-cost", "bars-model", "fan-1"} <= ids
    for svg in run.svgs:
        assert svg["width"] > 200, svg
        assert svg["height"] > 100, svg
        assert svg["drawn"] >= 3, svg  # bands, lines and bars with a real box after layout


def test_no_console_errors(rendered: tuple[PageRun, list[str], str]) -> None:
    run, _, _ = rendered
    assert run.errors == []


def test_no_request_leaves_the_page(rendered: tuple[PageRun, list[str], str]) -> None:
    run, seen, url = rendered
    assert [u for u in run.requests if not u.startswith("data:")] == [url]
    assert seen == ["/report.html"]  # the server saw nothing else either (no favicon)


def test_screenshot(rendered: tuple[PageRun, list[str], str], tmp_path: Path) -> None:
    run, _, _ = rendered
    shot = tmp_path / "report.png"
    shot.write_bytes(run.screenshot)
    assert run.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", run.screenshot[16:24])
    assert width == 1280
    assert height > 2000  # the whole page, not just the first screen
    assert len(run.screenshot) > 100_000  # charts and tables, not a blank page


def test_wide_tables_scroll_inside_the_page(rendered: tuple[PageRun, list[str], str]) -> None:
    run, _, _ = rendered
    assert run.tables["wrappers"]
    assert set(run.tables["wrappers"]) == {"auto"}
    assert run.tables["page"] <= run.tables["view"]
