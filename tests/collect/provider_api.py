"""A loopback stand-in for the Anthropic and OpenAI admin usage APIs (real HTTP, real shapes).

It serves buckets it is given, filtered by the request's range and paged with an opaque
``next_page`` cursor, checks the admin key the way each provider sends it, and can be told
to answer the next requests to a path with scripted replies (429s, 500s).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KEY = "sk-ant-admin01-SECRET-do-not-print-1234567890"
OPENAI_KEY = "sk-admin-SECRET-openai-0987654321"
A_USAGE = "/v1/organizations/usage_report/messages"
A_COSTS = "/v1/organizations/cost_report"
O_USAGE = "/v1/organization/usage/completions"
O_COSTS = "/v1/organization/costs"


@dataclass(frozen=True)
class Reply:
    """A scripted answer."""

    status: int
    body: str = '{"error": {"type": "api_error", "message": "Internal server error"}}'
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """One request as it arrived."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def hours(start: datetime, count: int) -> list[tuple[datetime, datetime]]:
    return [(start + timedelta(hours=i), start + timedelta(hours=i + 1)) for i in range(count)]


def anthropic_usage_bucket(lo: datetime, hi: datetime, scale: int = 1) -> dict[str, Any]:
    """A usage bucket with two models, numbers that depend on the hour."""
    h = lo.hour + 1
    return {
        "starting_at": iso(lo),
        "ending_at": iso(hi),
        "results": [
            {
                "uncached_input_tokens": 1000 * h * scale,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": 100 * scale,
                    "ephemeral_5m_input_tokens": 200 * scale,
                },
                "cache_read_input_tokens": 300 * scale,
                "output_tokens": 50 * h * scale,
                "server_tool_use": {"web_search_requests": 0},
                "api_key_id": "apikey_01",
                "workspace_id": "wrkspc_01",
                "model": "claude-sonnet-4-5-20250929",
                "service_tier": "standard",
                "context_window": "0-200k",
            },
            {
                "uncached_input_tokens": 10 * scale,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": 0,
                    "ephemeral_5m_input_tokens": 0,
                },
                "cache_read_input_tokens": 0,
                "output_tokens": 5 * scale,
                "server_tool_use": {"web_search_requests": 0},
                "api_key_id": "apikey_02",
                "workspace_id": None,
                "model": "claude-haiku-4-5-20251001",
                "service_tier": "standard",
                "context_window": "0-200k",
            },
        ],
    }


def anthropic_cost_bucket(lo: datetime, hi: datetime, cents: str) -> dict[str, Any]:
    return {
        "starting_at": iso(lo),
        "ending_at": iso(hi),
        "results": [
            {
                "currency": "USD",
                "amount": cents,
                "workspace_id": "wrkspc_01",
                "description": "Claude Sonnet 4.5 Usage - Input Tokens",
                "cost_type": "tokens",
                "context_window": "0-200k",
                "model": "claude-sonnet-4-5-20250929",
                "service_tier": "standard",
                "token_type": "uncached_input_tokens",
            }
        ],
    }


def openai_usage_bucket(lo: datetime, hi: datetime) -> dict[str, Any]:
    h = lo.hour + 1
    return {
        "object": "bucket",
        "start_time": int(lo.timestamp()),
        "end_time": int(hi.timestamp()),
        "results": [
            {
                "object": "organization.usage.completions.result",
                "input_tokens": 2000 * h,
                "output_tokens": 100 * h,
                "input_cached_tokens": 500,
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "num_model_requests": 10 * h,
                "project_id": "proj_abc",
                "user_id": None,
                "api_key_id": "key_abc",
                "model": "gpt-4o-2024-08-06",
                "batch": False,
            }
        ],
    }


def openai_cost_bucket(lo: datetime, hi: datetime, dollars: str) -> dict[str, Any]:
    return {
        "object": "bucket",
        "start_time": int(lo.timestamp()),
        "end_time": int(hi.timestamp()),
        "results": [
            {
                "object": "organization.costs.result",
                "amount": {"value": dollars, "currency": "usd"},
                "line_item": "gpt-4o-2024-08-06, input",
                "project_id": "proj_abc",
            }
        ],
    }


class ProviderApi:
    """``with ProviderApi(page_size=5) as api``: serves on a free 127.0.0.1 port.

    ``api.buckets[path]`` are the buckets served; ``api.script[path]`` scripted replies used
    (in order) before the data; ``api.requests`` records everything.
    """

    def __init__(self, page_size: int = 5) -> None:
        self.page_size = page_size
        self.buckets: dict[str, list[dict[str, Any]]] = {
            A_USAGE: [],
            A_COSTS: [],
            O_USAGE: [],
            O_COSTS: [],
        }
        self.script: dict[str, list[Reply]] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ProviderApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def fail(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.script.setdefault(path, []).extend(replies)

    def requests_to(self, path: str) -> Iterator[Request]:
        return (r for r in self.requests if r.path == path)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.requests.append(Request(parts.path, query, headers))
            scripted = self.script.get(parts.path)
            reply = scripted.pop(0) if scripted else None
        if reply is None:
            reply = self._data(parts.path, query, headers)
        body = reply.body.encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _data(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        anthropic = path.startswith("/v1/organizations/")
        if anthropic:
            authorized = headers.get("x-api-key") == KEY and "anthropic-version" in headers
        else:
            authorized = headers.get("authorization") == f"Bearer {OPENAI_KEY}"
        if not authorized:
            return Reply(401, '{"error": {"type": "authentication_error", "message": "bad key"}}')
        if path not in self.buckets:
            return Reply(404, '{"error": {"message": "not found"}}')
        lo_key, hi_key = ("starting_at", "ending_at") if anthropic else ("start_time", "end_time")
        lo = _moment(query[lo_key][0])
        hi = _moment(query[hi_key][0]) if hi_key in query else None
        chosen = [
            b
            for b in self.buckets[path]
            if _moment(b[lo_key]) >= lo and (hi is None or _moment(b[lo_key]) < hi)
        ]
        first = int(query["page"][0].removeprefix("cursor-")) if "page" in query else 0
        size = min(self.page_size, int(query.get("limit", ["1000"])[0]))
        page = chosen[first : first + size]
        more = first + size < len(chosen)
        body = {
            "data": page,
            "has_more": more,
            "next_page": f"cursor-{first + size}" if more else None,
        }
        if not anthropic:
            body["object"] = "page"
        return Reply(200, json.dumps(body))


def _moment(value: Any) -> datetime:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value), UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
