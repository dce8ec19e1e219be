"""Read the providers' rate-limit response headers into `ObservedLimit`s.

Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-``
``{limit,remaining,reset}`` (reset is an RFC 3339 time).
OpenAI: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (reset is a duration,
``6m0s``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tokenplan.events import ObservedLimit

__all__ = ["RATE_LIMIT_KINDS", "ObservedLimit", "read_rate_limits"]

# Header spelling → the kind stored (and mapped onto rpm / tpm / itpm / otpm by the plan).
RATE_LIMIT_KINDS = {
    "requests": "requests",
    "tokens": "tokens",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
}


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def read_rate_limits(
    get: Callable[[str], str | None],
    *,
    provider: str,
    model: str,
    key_id: str | None,
    observed_at: datetime,
) -> list[ObservedLimit]:
    """The limits found through ``get`` (a case-insensitive header lookup); [] when none."""
    found = []
    for spelling, kind in RATE_LIMIT_KINDS.items():
        anthropic = f"anthropic-ratelimit-{spelling}-"
        limit = get(anthropic + "limit")
        if limit is not None:
            remaining, reset = get(anthropic + "remaining"), get(anthropic + "reset")
        elif "-" not in spelling:
            limit = get(f"x-ratelimit-limit-{spelling}")
            remaining = get(f"x-ratelimit-remaining-{spelling}")
            reset = get(f"x-ratelimit-reset-{spelling}")
        else:
            continue
        if limit is None and remaining is None:
            continue
        found.append(
            ObservedLimit(
                provider=provider,
                model=model,
                key_id=key_id,
                kind=kind,
                limit=_count(limit),
                remaining=_count(remaining),
                reset=reset.strip()[:64] if reset else None,
                observed_at=observed_at,
            )
        )
    return found
