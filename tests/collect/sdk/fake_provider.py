"""A loopback HTTP server that answers like the OpenAI and Anthropic APIs (JSON and SSE)."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One canned answer: a JSON body, or server-sent events when ``events`` is given."""

    status: int = 200
    body: Any = None
    events: list[tuple[str | None, Any]] | None = None  # (event name, data); data "[DONE]" raw
    headers: dict[str, str] = field(default_factory=dict)


class FakeProvider:
    """Serves queued `Reply`s in order on 127.0.0.1 and keeps the requests it saw."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms a call

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                owner.requests.append((self.path, json.loads(raw) if raw else {}))
                reply = owner.replies.popleft()
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.events is None:
                    data = json.dumps(reply.body).encode()
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for name, payload in reply.events:
                    text = payload if isinstance(payload, str) else json.dumps(payload)
                    block = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
                    chunk = block.encode()
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        self.replies.extend(replies)


OPENAI_LIMITS = {
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-limit-tokens": "800000",
    "x-ratelimit-remaining-tokens": "799850",
    "x-ratelimit-reset-tokens": "11ms",
}
ANTHROPIC_LIMITS = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2025-06-01T12:00:01Z",
    "anthropic-ratelimit-input-tokens-limit": "2000000",
    "anthropic-ratelimit-input-tokens-remaining": "1999000",
    "anthropic-ratelimit-input-tokens-reset": "2025-06-01T12:00:00Z",
    "anthropic-ratelimit-output-tokens-limit": "400000",
    "anthropic-ratelimit-output-tokens-remaining": "399960",
    "anthropic-ratelimit-output-tokens-reset": "2025-06-01T12:00:00Z",
    "anthropic-ratelimit-tokens-limit": "2400000",
    "anthropic-ratelimit-tokens-remaining": "2398960",
    "anthropic-ratelimit-tokens-reset": "2025-06-01T12:00:00Z",
}


def chat_completion(rid: str = "chatcmpl-1") -> Reply:
    """A Chat Completions answer with cached and reasoning tokens."""
    return Reply(
        body={
            "id": rid,
            "object": "chat.completion",
            "created": 1748779200,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 30,
                "total_tokens": 1230,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 10, "audio_tokens": 0},
            },
            "system_fingerprint": "fp_1",
        },
        headers={"x-request-id": f"req_{rid}", **OPENAI_LIMITS},
    )


def chat_stream(rid: str = "chatcmpl-2", *, with_usage: bool = True) -> Reply:
    """A streamed Chat Completion; the usage chunk only when the app asked for it."""
    base = {"id": rid, "object": "chat.completion.chunk", "created": 1748779200}
    base["model"] = "gpt-4o-mini-2024-07-18"
    events: list[tuple[str | None, Any]] = [
        (None, {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        (None, {**base, "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        (None, {**base, "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        (None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ]
    if with_usage:
        usage = {
            "prompt_tokens": 500,
            "completion_tokens": 2,
            "total_tokens": 502,
            "prompt_tokens_details": {"cached_tokens": 256},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        events.append((None, {**base, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return Reply(events=events, headers={"x-request-id": f"req_{rid}", **OPENAI_LIMITS})


def _response_object(rid: str, status: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": 1748779200,
        "status": status,
        "model": "gpt-4.1-2025-04-14",
        "output": []
        if usage is None
        else [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


RESPONSES_USAGE = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 512},
    "output_tokens": 45,
    "output_tokens_details": {"reasoning_tokens": 20},
    "total_tokens": 945,
}


def response(rid: str = "resp_1") -> Reply:
    """A Responses API answer."""
    return Reply(
        body=_response_object(rid, "completed", RESPONSES_USAGE),
        headers={"x-request-id": f"req_{rid}", **OPENAI_LIMITS},
    )


def response_stream(rid: str = "resp_2") -> Reply:
    """A streamed Responses API answer ending with ``response.completed``."""
    events: list[tuple[str | None, Any]] = [
        (
            "response.created",
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": _response_object(rid, "in_progress", None),
            },
        ),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Hi",
                "logprobs": [],
            },
        ),
        (
            "response.completed",
            {
                "type": "response.completed",
                "sequence_number": 2,
                "response": _response_object(rid, "completed", RESPONSES_USAGE),
            },
        ),
    ]
    return Reply(events=events, headers={"x-request-id": f"req_{rid}", **OPENAI_LIMITS})


ANTHROPIC_USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 100,
    "cache_read_input_tokens": 1000,
    "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 40},
    "output_tokens": 40,
    "service_tier": "standard",
}


def message(rid: str = "msg_01") -> Reply:
    """A Messages API answer with cache reads and writes."""
    return Reply(
        body={
            "id": rid,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": ANTHROPIC_USAGE,
        },
        headers={"request-id": f"req_{rid}", **ANTHROPIC_LIMITS},
    )


def message_stream(rid: str = "msg_02") -> Reply:
    """A streamed Messages answer: input usage in message_start, output in message_delta."""
    start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
    events: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": rid,
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-haiku-4-5-20251001",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 15},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return Reply(events=events, headers={"request-id": f"req_{rid}", **ANTHROPIC_LIMITS})


def openai_rate_limited() -> Reply:
    """OpenAI's 429."""
    return Reply(
        status=429,
        body={
            "error": {
                "message": "Rate limit reached for gpt-4o on requests per min (RPM).",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        headers={"retry-after": "1", "x-request-id": "req_429", **OPENAI_LIMITS},
    )


def anthropic_rate_limited() -> Reply:
    """Anthropic's 429."""
    return Reply(
        status=429,
        body={
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "Number of request tokens exceeded."},
        },
        headers={"retry-after": "1", "request-id": "req_a429", **ANTHROPIC_LIMITS},
    )
