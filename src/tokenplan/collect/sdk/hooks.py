"""HTTP-level hooks: capture each model call's response bytes as the app reads them.

The hooks sit on the SDK's own HTTP client (``httpx`` or ``httpx2``, whose event hooks and
``Response.stream`` are public API) and pass every byte through unchanged, so return values,
exceptions, types and streaming behave exactly as without them. All parsing happens later,
on the batcher's thread.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from typing import Any

from tokenplan.collect.sdk.provider_calls import CapturedCall, recorded

log = logging.getLogger("tokenplan.instrument")

START_KEY = "tokenplan.started"
Submit = Callable[[CapturedCall], object]


def _finish(call: CapturedCall, submit: Submit, clock: Callable[[], float]) -> None:
    if call.finished:
        return
    call.finished = time.perf_counter()
    call.finished_at = clock()
    submit(call)


@cache
def _tee_classes(library: str) -> tuple[type, type]:
    """Byte-stream wrappers deriving from ``library``'s own stream base classes."""
    lib = importlib.import_module(library)

    class SyncTee(lib.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, call: CapturedCall, submit: Submit, clock: Any) -> None:
            self._inner, self._call, self._submit, self._clock = inner, call, submit, clock

        def __iter__(self) -> Iterator[bytes]:
            chunks = self._call.chunks
            try:
                for chunk in self._inner:
                    chunks.append(chunk)
                    yield chunk
            except GeneratorExit:  # the app stopped reading early: not a failed call
                raise
            except BaseException:
                self._call.broken = True
                raise

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                _safely(_finish, self._call, self._submit, self._clock)

    class AsyncTee(lib.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, call: CapturedCall, submit: Submit, clock: Any) -> None:
            self._inner, self._call, self._submit, self._clock = inner, call, submit, clock

        async def __aiter__(self) -> AsyncIterator[bytes]:
            chunks = self._call.chunks
            try:
                async for chunk in self._inner:
                    chunks.append(chunk)
                    yield chunk
            except GeneratorExit:  # the app stopped reading early: not a failed call
                raise
            except BaseException:
                self._call.broken = True
                raise

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                _safely(_finish, self._call, self._submit, self._clock)

    return SyncTee, AsyncTee


def _safely(fn: Callable[..., object], *args: Any) -> None:
    """Run ``fn``; an error of ours is logged, never raised into the app."""
    try:
        fn(*args)
    except Exception:
        log.exception("tokenplan: instrumentation error (the call itself is unaffected)")


class CallHooks:
    """The request and response hooks of one instrumented client."""

    def __init__(
        self,
        *,
        provider: str,
        labels: dict[str, str | None],
        submit: Submit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.labels = labels
        self.submit = submit
        self.clock = clock

    def on_request(self, request: Any) -> None:
        """Stamp the start time (the request hook)."""
        with contextlib.suppress(Exception):
            request.extensions[START_KEY] = time.perf_counter()

    def on_response(self, response: Any, *, is_async: bool) -> None:
        """Wrap a model call's body stream so its bytes are kept as the app reads them."""
        try:
            request = response.request
            path = request.url.path
            if not recorded(request.method, path):
                return
            try:
                body: bytes | None = request.content
            except Exception:  # a streamed upload: the model is read from the response
                body = None
            call = CapturedCall(
                provider=self.provider,
                path=path,
                request_body=body,
                status=response.status_code,
                headers=response.headers,
                started=request.extensions.get(START_KEY) or time.perf_counter(),
                labels=self.labels,
            )
            library = type(response).__module__.split(".")[0]
            sync_tee, async_tee = _tee_classes(library)
            tee = async_tee if is_async else sync_tee
            response.stream = tee(response.stream, call, self.submit, self.clock)
        except Exception:
            log.exception("tokenplan: instrumentation error (the call itself is unaffected)")

    def sync_hooks(self) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
        """Hooks for a sync HTTP client."""

        def request_hook(request: Any) -> None:
            self.on_request(request)

        def response_hook(response: Any) -> None:
            self.on_response(response, is_async=False)

        return request_hook, response_hook

    def async_hooks(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        """Hooks for an async HTTP client (the client awaits them)."""

        async def request_hook(request: Any) -> None:
            self.on_request(request)

        async def response_hook(response: Any) -> None:
            self.on_response(response, is_async=True)

        return request_hook, response_hook
