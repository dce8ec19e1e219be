"""Costed what-ifs on the forecast: a cheaper model, the batch API, more prompt-cache hits.

Each piece of advice is priced with the `PriceBook` on the forecast month's usage and is only
given when both prices are known and the saving clears a threshold; it states its assumption.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Protocol

import pandas as pd

__all__ = [
    "DEFAULT_ALTERNATIVES",
    "Advice",
    "ModelUsage",
    "advise",
    "monthly_usage",
]

# Same-provider, same-family step down; a starting point, overridable per call.
DEFAULT_ALTERNATIVES: dict[str, str] = {
    "claude-opus-4*": "claude-sonnet-4-5",
    "claude-sonnet-4*": "claude-haiku-4-5",
    "claude-3-7-sonnet*": "claude-haiku-4-5",
    "gpt-4o": "gpt-4o-mini",
    "gpt-4o-2024-*": "gpt-4o-mini",
    "gpt-4.1": "gpt-4.1-mini",
    "gpt-4.1-2025-*": "gpt-4.1-mini",
    "gpt-5": "gpt-5-mini",
    "o3": "o4-mini",
    "gemini-2.5-pro*": "gemini-2.5-flash",
}
_DAYS_PER_MONTH = Decimal("30.4375")  # 365.25 / 12


class Pricer(Protocol):
    """What advice needs from `tokenplan.pricing.PriceBook`."""

    def cost(
        self,
        provider: str | None,
        model: str,
        at: datetime,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        *,
        requests: int = 1,
        batch: bool = False,
    ) -> Decimal | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelUsage:
    """One model's usage over a month (input tokens include cached ones, as in the store)."""

    provider: str | None
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def scaled(self, share: float) -> ModelUsage:
        """This usage times ``share`` (a slice of the traffic)."""

        def part(v: int) -> int:
            return round(v * share)

        return replace(
            self,
            requests=max(part(self.requests), 1 if self.requests else 0),
            input_tokens=part(self.input_tokens),
            output_tokens=part(self.output_tokens),
            cache_read_tokens=part(self.cache_read_tokens),
            cache_write_tokens=part(self.cache_write_tokens),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Advice:
    """A priced what-if: what to change, dollars saved per month and the assumption behind it."""

    kind: str  # switch_model, batch, cache
    model: str
    saving_usd_month: Decimal
    current_usd_month: Decimal
    assumption: str
    message: str


def monthly_usage(
    forecasts: Mapping[str, pd.DataFrame], providers: Mapping[str, str | None] | None = None
) -> list[ModelUsage]:
    """Per-model monthly usage from forecast frames (metric → ``unique_id`` = model, ``ds, mean``).

    The forecast horizon's total is scaled to 30.4375 days, so a one-week forecast works too.
    """
    totals: dict[str, dict[str, float]] = {}
    for metric, frame in forecasts.items():
        if frame.empty:
            continue
        ds = pd.to_datetime(frame["ds"])
        step = ds.drop_duplicates().sort_values().diff().min()
        span_days = (
            ds.max() - ds.min() + (step if pd.notna(step) else pd.Timedelta(hours=1))
        ) / pd.Timedelta(days=1)
        factor = float(_DAYS_PER_MONTH) / span_days
        for model, total in frame.groupby("unique_id")["mean"].sum().items():
            totals.setdefault(str(model), {})[metric] = float(total) * factor
    out = []
    for model, m in sorted(totals.items()):
        out.append(
            ModelUsage(
                provider=(providers or {}).get(model),
                model=model,
                requests=round(m.get("requests", 0.0)),
                input_tokens=round(m.get("input_tokens", 0.0)),
                output_tokens=round(m.get("output_tokens", 0.0)),
                cache_read_tokens=round(m.get("cache_read_tokens", 0.0)),
                cache_write_tokens=round(m.get("cache_write_tokens", 0.0)),
            )
        )
    return out


def _cost(
    prices: Pricer, u: ModelUsage, at: datetime, *, model: str | None = None, batch: bool = False
) -> Decimal | None:
    return prices.cost(
        u.provider,
        model or u.model,
        at,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        requests=max(u.requests, 1),
        batch=batch,
    )


def _usd(value: Decimal) -> str:
    return f"${value.quantize(Decimal('0.01')):,}"


def advise(
    usage: Sequence[ModelUsage],
    prices: Pricer,
    *,
    at: datetime,
    alternatives: Mapping[str, str] | None = None,
    switch_share: float = 0.3,
    batch_share: float = 0.2,
    cache_gain: float = 0.2,
    min_saving: Decimal = Decimal("1"),
) -> list[Advice]:
    """Priced what-ifs per model, largest saving first; nothing where prices are unknown.

    ``switch_share`` of a model's traffic moves to its cheaper alternative; ``batch_share`` of
    it goes through the batch API; ``cache_gain`` of its uncached input becomes cache reads.
    """
    table = DEFAULT_ALTERNATIVES if alternatives is None else alternatives
    out: list[Advice] = []
    for u in usage:
        current = _cost(prices, u, at)
        if current is None or current <= 0:
            continue
        alt = next(
            (a for pat, a in table.items() if fnmatchcase(u.model, pat) and a != u.model), None
        )
        if alt is not None:
            out += _switch(prices, u, at, alt, current, switch_share, min_saving)
        out += _batch(prices, u, at, current, batch_share, min_saving)
        out += _cache(prices, u, at, current, cache_gain, min_saving)
    return sorted(out, key=lambda a: a.saving_usd_month, reverse=True)


def _switch(
    prices: Pricer,
    u: ModelUsage,
    at: datetime,
    alt: str,
    current: Decimal,
    share: float,
    floor: Decimal,
) -> list[Advice]:
    part = u.scaled(share)
    here, there = _cost(prices, part, at), _cost(prices, part, at, model=alt)
    if here is None or there is None or here - there < floor:
        return []
    saving = here - there
    return [
        Advice(
            kind="switch_model",
            model=u.model,
            saving_usd_month=saving,
            current_usd_month=current,
            assumption=(
                f"{share:.0%} of {u.model} requests ({part.requests:,}/month) can be served by "
                f"{alt} with the same tokens per request"
            ),
            message=(
                f"Moving {share:.0%} of {u.model} traffic to {alt} saves {_usd(saving)}/month "
                f"({_usd(here)} → {_usd(there)} for that share; {u.model} costs "
                f"{_usd(current)}/month in the forecast)."
            ),
        )
    ]


def _batch(
    prices: Pricer, u: ModelUsage, at: datetime, current: Decimal, share: float, floor: Decimal
) -> list[Advice]:
    part = u.scaled(share)
    here, batched = _cost(prices, part, at), _cost(prices, part, at, batch=True)
    if here is None or batched is None or here - batched < floor:
        return []
    saving = here - batched
    return [
        Advice(
            kind="batch",
            model=u.model,
            saving_usd_month=saving,
            current_usd_month=current,
            assumption=f"{share:.0%} of {u.model} requests can wait up to a day for the batch API",
            message=(
                f"Sending {share:.0%} of {u.model} traffic through the batch API saves "
                f"{_usd(saving)}/month ({_usd(here)} → {_usd(batched)})."
            ),
        )
    ]


def _cache(
    prices: Pricer, u: ModelUsage, at: datetime, current: Decimal, gain: float, floor: Decimal
) -> list[Advice]:
    uncached = u.input_tokens - u.cache_read_tokens - u.cache_write_tokens
    moved = round(max(uncached, 0) * gain)
    if moved <= 0:
        return []
    better = replace(u, cache_read_tokens=u.cache_read_tokens + moved)
    after = _cost(prices, better, at)
    if after is None or current - after < floor:
        return []
    saving = current - after
    hit_now = u.cache_read_tokens / u.input_tokens if u.input_tokens else 0.0
    hit_then = better.cache_read_tokens / u.input_tokens if u.input_tokens else 0.0
    return [
        Advice(
            kind="cache",
            model=u.model,
            saving_usd_month=saving,
            current_usd_month=current,
            assumption=(
                f"{gain:.0%} of {u.model}'s uncached input ({moved:,} tokens/month) is a repeated "
                f"prefix that prompt caching can serve; cache-write costs are left out"
            ),
            message=(
                f"Raising {u.model}'s prompt-cache hit rate from {hit_now:.0%} to {hit_then:.0%} "
                f"of input tokens saves {_usd(saving)}/month ({_usd(current)} → {_usd(after)})."
            ),
        )
    ]
