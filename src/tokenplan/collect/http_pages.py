"""Paged GETs against a provider's admin API: pagination, ``retry-after`` and backoff.

A page is a JSON object; ``has_more`` with ``next_page`` asks for the next one (sent back as
``page``). 429, 5xx and connection errors are retried up to `Retry.attempts` times, waiting
what ``retry-after`` says or else an exponential backoff with full jitter; any other 4xx fails
at once. The admin key travels only in the client's headers: it never enters a message or log
line (a reply that echoes it is shown with the key masked).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from tokenplan.errors import ProviderError
from tokenplan.untrusted import visible

log = logging.getLogger("tokenplan.pull")

Params = Sequence[tuple[str, str]]
Sleep = Callable[[float], None]
_SHOWN_BODY = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """How hard to retry: ``attempts`` tries in all, backoff ``base_s * 2**n`` capped at ``cap_s``.

    ``max_wait_s`` bounds a single wait, including one a ``retry-after`` header asks for.
    """

    attempts: int = 6
    base_s: float = 1.0
    cap_s: float = 60.0
    max_wait_s: float = 300.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Full jitter: a uniform wait in ``[0, min(cap, base * 2**(failures - 1))]``."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (failures - 1)))


def fetch_pages(
    client: httpx.Client,
    path: str,
    params: Params,
    *,
    retry: Retry,
    sleep: Sleep,
    rng: random.Random,
    secret: str,
    start_page: str | None = None,
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Each page of ``path`` in order, with the cursor that fetched it (None for the first)."""
    cursor = start_page
    seen: set[str] = set()
    while True:
        query = [*params, *((("page", cursor),) if cursor else ())]
        body = get_json(client, path, query, retry=retry, sleep=sleep, rng=rng, secret=secret)
        yield body, cursor
        if not body.get("has_more"):
            return
        following = body.get("next_page")
        if not isinstance(following, str) or not following:
            raise ProviderError(
                f"GET {path}: a page says has_more=true but gives no next_page; the provider's "
                "answer is malformed, so the pull stops here (pages so far are kept)."
            )
        if following in seen:
            raise ProviderError(f"GET {path}: next_page {visible(following)!r} repeats; stopped.")
        seen.add(following)
        cursor = following


def get_json(
    client: httpx.Client,
    path: str,
    params: Params,
    *,
    retry: Retry,
    sleep: Sleep,
    rng: random.Random,
    secret: str,
) -> dict[str, Any]:
    """One GET answered with a JSON object, retried on 429, 5xx and connection errors."""
    last = ""
    for attempt in range(1, retry.attempts + 1):
        try:
            response = client.get(path, params=list(params))
        except httpx.TransportError as exc:
            last = f"connection failed ({type(exc).__name__})"
            wait = retry.backoff(attempt, rng)
        else:
            if response.status_code == 200:
                return _page(response, path, secret)
            last = f"HTTP {response.status_code}: {_excerpt(response, secret)}"
            if response.status_code in (401, 403):
                raise ProviderError(
                    f"GET {path} was refused ({last}); check that the admin key in the "
                    "environment is an organization admin key and has not been revoked."
                )
            if response.status_code != 429 and response.status_code < 500:
                raise ProviderError(f"GET {path} failed ({last}).")
            wait = _retry_after(response, retry) or retry.backoff(attempt, rng)
        if attempt == retry.attempts:
            break
        wait = min(wait, retry.max_wait_s)
        log.warning(
            "GET %s: %s; retrying in %.1f s (attempt %d of %d)",
            path,
            last,
            wait,
            attempt + 1,
            retry.attempts,
        )
        sleep(wait)
    raise ProviderError(
        f"GET {path} still failed after {retry.attempts} attempts (last: {last}); the "
        "provider is rate limiting or unavailable. Run the pull again later: it resumes."
    )


def _page(response: httpx.Response, path: str, secret: str) -> dict[str, Any]:
    try:
        # Exact decimals: a float would change a dollar amount in its 17th digit.
        body = json.loads(response.text, parse_float=Decimal)
    except (json.JSONDecodeError, RecursionError):
        raise ProviderError(
            f"GET {path} answered HTTP 200 with a body that is not JSON: "
            f"{_excerpt(response, secret)}"
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ProviderError(
            f"GET {path} answered with JSON that is not a report page (an object with a "
            "'data' list of buckets)."
        )
    return body


def _retry_after(response: httpx.Response, retry: Retry) -> float | None:
    """Seconds from ``retry-after`` (seconds or an HTTP date); None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds or seconds < 0:  # NaN or in the past: retry now
        return 0.0
    return min(seconds, retry.max_wait_s)


def _excerpt(response: httpx.Response, secret: str) -> str:
    """The start of an error body, one line, the key masked, controls made visible."""
    try:
        text = response.text
    except (UnicodeDecodeError, httpx.HTTPError):
        return "(unreadable body)"
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    if len(text) > _SHOWN_BODY:
        text = text[:_SHOWN_BODY] + "…"
    return visible(text) or "(empty body)"
