"""Per-token rates and context tiers read out of genai-prices' bundled data.

genai-prices prices a whole usage at once; tokenplan needs the rates themselves (to price 10M
rows with Arrow, to show them, to price what-ifs), so this module resolves a ``ModelPrice`` at a
moment into ``Rates`` the same way ``ModelPrice.calc_price`` would charge it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    TieredPrices,
    TimeOfDateConstraint,
)

from tokenplan.pricing.rates import MTOK, Rates, TierRates

_BATCH_CONTEXT = {"processing": "batch"}
# Providers that mean "not known": price by the model name alone.
_NO_PROVIDER = {"", "unknown", "none"}


@cache
def genai_version() -> str:
    """The installed genai-prices version, for ``Rates.source``."""
    return str(genai_prices.__version__)


@dataclass(frozen=True, slots=True)
class Match:
    """A model found in genai-prices, and how it was found."""

    provider: Provider
    model: ModelInfo
    note: str | None  # set when the caller's provider was not one genai-prices knows


class Catalog:
    """Looks models up in a genai-prices data snapshot and resolves their rates."""

    def __init__(self, snapshot: data_snapshot.DataSnapshot | None = None) -> None:
        self._snapshot = snapshot or data_snapshot.get_snapshot()
        self._found: dict[tuple[str, str], Match | None] = {}
        self._resolved: dict[tuple[object, ...], Rates | None] = {}

    def find(self, provider: str | None, model: str) -> Match | None:
        """The genai-prices model for ``model`` (under ``provider`` when it knows it), or None."""
        key = ((provider or "").strip().lower(), model.strip().lower())
        if key not in self._found:
            self._found[key] = self._find(*key)
        return self._found[key]

    def _find(self, provider: str, model: str) -> Match | None:
        snap = self._snapshot
        known = (
            provider not in _NO_PROVIDER
            and data_snapshot.find_provider_by_id(snap.providers, provider) is not None
        )
        try:
            found, info = snap.find_provider_model(model, None, provider if known else None, None)
        except LookupError:
            return self._vendor_prefixed(model)
        note = None
        if not known and provider not in _NO_PROVIDER:
            note = (
                f"provider '{provider}' is not in genai-prices; '{model}' is priced at "
                f"{found.id}'s list price (add an override if '{provider}' charges otherwise)"
            )
        return Match(found, info, note)

    def _vendor_prefixed(self, model: str) -> Match | None:
        """``vendor/model``, as LiteLLM and OpenAI-compatible relays name models
        (``openai/gpt-4o-mini``): the model under that vendor, or by its own name."""
        vendor, slash, rest = model.partition("/")
        if not slash or not vendor or not rest:
            return None
        match = self.find(vendor, rest)
        if match is None:
            return None
        note = (
            f"'{model}' is priced as {match.provider.id}'s {match.model.id} (a vendor/model name;"
            " add an override if it is charged otherwise)"
        )
        return Match(match.provider, match.model, note)

    def boundaries(self, match: Match) -> tuple[int, ...]:
        """Seconds after UTC midnight where the model's time-of-day prices change (often none)."""
        constraints = []
        if isinstance(match.model.prices, list):
            constraints += [c.constraint for c in match.model.prices]
        constraints += [v.constraint for v in match.model.price_variants or ()]
        points = set()
        for c in constraints:
            if isinstance(c, TimeOfDateConstraint):
                points |= {_utc_seconds(c.start_time), _utc_seconds(c.end_time)}
        points.discard(0)
        return tuple(sorted(points))

    def rates(self, match: Match, at: datetime, *, batch: bool = False) -> Rates | None:
        """The model's rates at ``at`` (aware or naive UTC); None when it has no token prices."""
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        info, provider = match.model, match.provider
        # Mirror ModelInfo.calc_price: variants apply only to a provider's own models.
        own = any(info is m for m in provider.models)
        has_batch = own and any(
            v.when == _BATCH_CONTEXT and (v.constraint is None or v.constraint.active(at))
            for v in info.price_variants or ()
        )
        if batch and not has_batch:
            return None
        # Prices change only where a constraint flips, so memoize on which ones are active.
        state = (id(info), id(provider), match.note, batch, _active(info, at))
        if state not in self._resolved:
            self._resolved[state] = self._rates(match, at, batch)
        rates = self._resolved[state]
        if rates is None:
            return None
        return replace(rates, valid_on=at.astimezone(UTC).date())

    def _rates(self, match: Match, at: datetime, batch: bool) -> Rates | None:
        info, provider = match.model, match.provider
        price = info.get_prices(at, _BATCH_CONTEXT if batch else None)
        resolved = _resolve(price)
        if resolved is None:
            return None
        base, tiers = resolved
        label = f"{provider.id}/{info.id}" + (" batch" if batch else "")
        return Rates(
            provider=provider.id,
            model=info.id,
            base=base,
            tiers=tiers,
            source=f"genai-prices {genai_version()} ({label})",
            valid_on=at.astimezone(UTC).date(),
            valid_from=_valid_from(info, at),
            batch=batch,
            note=match.note,
        )


def _active(info: ModelInfo, at: datetime) -> tuple[bool, ...]:
    constraints = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
    constraints += [v.constraint for v in info.price_variants or ()]
    return tuple(c is None or c.active(at) for c in constraints)


def _utc_seconds(t: time) -> int:
    aware = datetime.combine(date(1970, 1, 2), t, tzinfo=t.tzinfo or UTC).astimezone(UTC)
    return aware.hour * 3600 + aware.minute * 60 + aware.second


def _valid_from(info: ModelInfo, at: datetime) -> date | None:
    """The start date of the dated price in effect at ``at``, when genai-prices records one."""
    if not isinstance(info.prices, list):
        return None
    starts = [
        c.constraint.start_date
        for c in info.prices
        if isinstance(c, ConditionalPrice)
        and c.constraint is not None
        and hasattr(c.constraint, "start_date")
        and c.constraint.active(at)
    ]
    return max(starts) if starts else None


_Price = Decimal | TieredPrices | None


def _resolve(price: ModelPrice) -> tuple[TierRates, tuple[tuple[int, TierRates], ...]] | None:
    """Per-token base rates and merged context tiers of a ModelPrice, or None if untokened."""
    fields: dict[str, _Price] = {
        "input": price.input_mtok,
        "output": price.output_mtok,
        "cache_read": price.cache_read_mtok,
        "cache_write": price.cache_write_mtok,
        "cache_write_1h": price.cache_write_1h_mtok,
        "request": price.requests_kcount,
    }
    if fields["input"] is None:
        return None
    starts = sorted(
        {t.start for p in fields.values() if isinstance(p, TieredPrices) for t in p.tiers}
    )
    base = _tier(fields, None)
    return base, tuple((start, _tier(fields, start)) for start in starts)


def _tier(fields: dict[str, _Price], above: int | None) -> TierRates:
    """Rates that apply when a request's input tokens exceed ``above`` (None: the base tier)."""

    def at_tier(p: _Price) -> Decimal | None:
        if not isinstance(p, TieredPrices):
            return p
        chosen = p.base
        for t in p.tiers:
            # In the band just above `above`, every tier starting at or below it is crossed.
            if above is not None and t.start <= above:
                chosen = t.price
        return chosen

    per_mtok = {name: at_tier(p) for name, p in fields.items()}
    inp = per_mtok["input"]
    assert inp is not None
    # Input-only models (embeddings) have no output price; genai-prices charges output 0 there.
    out = per_mtok["output"] or Decimal(0)
    fee = per_mtok["request"] or Decimal(0)
    # An unpriced cache unit stays inside input_tokens in genai-prices, so it pays the input rate.
    read = per_mtok["cache_read"] if per_mtok["cache_read"] is not None else inp
    write = per_mtok["cache_write"] if per_mtok["cache_write"] is not None else inp
    hour = per_mtok["cache_write_1h"]
    return TierRates(
        input=inp / MTOK,
        output=out / MTOK,
        cache_read=read / MTOK,
        cache_write=write / MTOK,
        cache_write_1h=None if hour is None else hour / MTOK,
        request=fee / 1000,  # genai-prices quotes request fees per thousand requests
    )
