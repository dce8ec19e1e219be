"""Drive Debian's headless Chromium over the DevTools protocol, with no third-party client.

``--remote-debugging-pipe`` speaks CDP as NUL-terminated JSON on file descriptors 3 (in) and
4 (out): no port to discover, no websocket library, nothing listening on the network.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


_TABLE_FACTS = """({
  wrappers: [...document.querySelectorAll('table')].map(
    t => getComputedStyle(t.parentElement).overflowX),
  page: document.documentElement.scrollWidth,
  view: document.documentElement.clientWidth,
})"""


def chromium_path() -> str | None:
    """The Chromium binary, if installed."""
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


@dataclass
class PageRun:
    """What happened while a page loaded: requests, console errors, and the final DOM facts."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    svgs: list[dict[str, Any]] = field(default_factory=list)
    screenshot: bytes = b""
    # How wide tables lay out: each wrapper's overflow-x and the page's own scroll width.
    tables: dict[str, Any] = field(default_factory=dict)


class Chromium:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, user_data_dir: Path, timeout: float = 30.0) -> None:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed: run `make system-deps`.")
        self.timeout = timeout
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Move the child's ends above fd 4 so the dup2 onto 3 and 4 never aliases itself
        # (a dup2 onto the same number would keep close-on-exec set).
        child_in = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        log = user_data_dir / "chromium.log"
        self.pid = os.posix_spawn(
            binary,
            [binary, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            {**os.environ, "HOME": str(user_data_dir)},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
                (os.POSIX_SPAWN_DUP2, child_in, 3),
                (os.POSIX_SPAWN_DUP2, child_out, 4),
            ],
            setpgroup=0,  # its own group, so teardown can end exactly the processes we started
        )
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    # -- protocol --------------------------------------------------------------------------

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its result (events seen meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str | None = None) -> dict[str, Any]:
        """Wait for an event (one already received counts)."""
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)  # type: ignore[no-any-return]

    # -- a page ----------------------------------------------------------------------------

    def load(self, url: str, *, width: int = 1280, height: int = 900) -> PageRun:
        """Open ``url`` in a fresh tab, let it settle, and report what happened."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        start = len(self.events)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        # One round trip after load lets late console messages and requests arrive.
        facts = self.send(
            "Runtime.evaluate",
            {"expression": _SVG_FACTS, "returnByValue": True, "awaitPromise": True},
            session=session,
        )["result"]["value"]
        run = PageRun(svgs=json.loads(facts))
        run.tables = self.send(
            "Runtime.evaluate",
            {"expression": _TABLE_FACTS, "returnByValue": True},
            session=session,
        )["result"]["value"]
        metrics = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": metrics["height"], "scale": 1},
            },
            session=session,
        )
        run.screenshot = base64.b64decode(shot["data"])
        for event in self.events[start:]:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                run.requests.append(params["request"]["url"])
            elif method == "Runtime.exceptionThrown":
                run.errors.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params["type"] in (
                "error",
                "warning",
                "assert",
            ):
                run.errors.append(json.dumps(params["args"])[:500])
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                run.errors.append(params["entry"]["text"])
            elif method == "Network.loadingFailed":
                run.errors.append(f"loading failed: {params.get('errorText')}")
        self.send("Target.closeTarget", {"targetId": target})
        return run

    def close(self) -> None:
        """Ask Chromium to quit; end its process group if it does not."""
        with suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.waitpid(self.pid, os.WNOHANG) != (0, 0):
                break
            time.sleep(0.05)
        else:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[Chromium]:
    """A running headless Chromium, closed on exit."""
    browser = Chromium(user_data_dir)
    try:
        yield browser
    finally:
        browser.close()


_SVG_FACTS = """
JSON.stringify([...document.querySelectorAll('svg')].map(s => {
  const r = s.getBoundingClientRect();
  return {id: s.id, width: r.width, height: r.height,
          shapes: s.querySelectorAll('path, rect, line, circle').length,
          drawn: [...s.querySelectorAll('path, rect')].filter(e => {
            const b = e.getBBox(); return b.width > 0 && b.height > 0; }).length};
}))
"""
