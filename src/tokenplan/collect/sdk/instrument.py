"""`instrument`: record one UsageEvent per model call of an openai or anthropic client.

Why HTTP hooks rather than wrapping ``client.chat.completions.create``: every way the SDKs
call a model (``create``, ``stream()``, ``parse()``, ``with_raw_response``, sync and async,
new resources) goes through one HTTP client, whose event hooks and ``Response.stream`` are
public API of httpx (and httpx2, which the current SDKs use); what we read there is the
provider's versioned wire format. Wrapping methods would need a patch per method and per
helper, and would have to re-create the SDKs' stream types.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from typing import Any, TypeVar

from tokenplan.collect.sdk.hooks import CallHooks
from tokenplan.collect.sdk.recorder import Recorder
from tokenplan.collect.sdk.sinks import Sink, StoreSink
from tokenplan.errors import InvalidInput

log = logging.getLogger("tokenplan.instrument")

C = TypeVar("C")
_RECORDERS: weakref.WeakKeyDictionary[Any, Recorder] = weakref.WeakKeyDictionary()
_MARK = "_tokenplan_hook"


def _http_client(client: Any) -> Any:
    if hasattr(client, "event_hooks"):  # an httpx / httpx2 client given directly
        return client
    http = getattr(client, "_client", None)  # where both SDKs keep their HTTP client
    if http is None or not hasattr(http, "event_hooks"):
        raise InvalidInput(
            f"tokenplan.instrument: {type(client).__name__} is not an openai or anthropic "
            "client (or an httpx client); pass openai.OpenAI(), anthropic.Anthropic() or "
            "their async versions."
        )
    return http


def _provider(client: Any) -> str:
    top = type(client).__module__.split(".")[0]
    if top in ("openai", "anthropic"):
        return top
    raise InvalidInput(
        f"tokenplan.instrument: cannot tell the provider of {type(client).__name__}; "
        "pass provider='openai' or provider='anthropic' (the wire format it speaks)."
    )


def key_fingerprint(api_key: str | None) -> str | None:
    """A short, one-way label of an API key (``key-<12 hex>``); the key itself is never kept."""
    if not api_key:
        return None
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def recorder_of(client: Any) -> Recorder | None:
    """The `Recorder` an instrumented client reports to (to flush or read its stats)."""
    return _RECORDERS.get(_http_client(client))


def instrument(
    client: C,
    *,
    team: str | None = None,
    feature: str | None = None,
    user: str | None = None,
    key_id: str | None = None,
    provider: str | None = None,
    sink: Sink | None = None,
    recorder: Recorder | None = None,
) -> C:
    """Record every model call ``client`` makes; returns the same client, unchanged in behaviour.

    Events go to ``recorder`` (shared between clients), else a new one writing to ``sink``,
    else to the local store (``TOKENPLAN_DB`` or ``tokenplan.duckdb``).
    """
    http = _http_client(client)
    wire = provider or _provider(client)
    if wire not in ("openai", "anthropic"):
        raise InvalidInput(
            f"tokenplan.instrument: provider must be openai or anthropic, not {wire!r}."
        )
    if any(getattr(h, _MARK, False) for h in http.event_hooks.get("response", [])):
        raise InvalidInput("tokenplan.instrument: this client is already instrumented.")
    rec = recorder or Recorder(sink if sink is not None else StoreSink())
    labels = {
        "team": team,
        "feature": feature,
        "user": user,
        "key_id": key_id or key_fingerprint(getattr(client, "api_key", None)),
    }
    hooks = CallHooks(provider=wire, labels=labels, submit=rec.submit, clock=rec.clock)
    is_async = hasattr(http, "aclose")
    on_request, on_response = hooks.async_hooks() if is_async else hooks.sync_hooks()
    setattr(on_response, _MARK, True)
    current = http.event_hooks
    http.event_hooks = {
        "request": [*current.get("request", []), on_request],
        "response": [*current.get("response", []), on_response],
    }
    _RECORDERS[http] = rec
    return client
