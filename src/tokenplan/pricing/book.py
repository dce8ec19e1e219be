"""The price book: genai-prices list prices, local overrides on top, batch discounts and FX.

Unknown is never zero: a model no source prices gives ``None``, never a cost of 0.
"""

from __future__ import annotations

import bisect
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from tokenplan.errors import ConfigError, PriceError
from tokenplan.pricing.catalog import Catalog
from tokenplan.pricing.overrides import Override, OverridesFile, load_overrides
from tokenplan.pricing.rates import FxRate, Rates, to_decimal

if TYPE_CHECKING:
    import pyarrow as pa

    from tokenplan.pricing.rows import PricedRows


class PriceBook:
    """Resolves what a model costs at a moment: overrides first, then genai-prices.

    ``batch_multiplier`` is the discount for batch APIs where neither an override nor
    genai-prices gives a batch price (e.g. ``Decimal("0.5")``); without it those are unknown.
    """

    def __init__(
        self,
        overrides: Path | None = None,
        *,
        fx: FxRate | None = None,
        batch_multiplier: Decimal | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.overrides: OverridesFile | None = (
            load_overrides(overrides) if overrides is not None else None
        )
        self.fx = fx or (self.overrides.fx if self.overrides else None)
        if batch_multiplier is None and self.overrides is not None:
            batch_multiplier = self.overrides.batch_multiplier
        self.batch_multiplier = (
            None if batch_multiplier is None else to_decimal(batch_multiplier, "batch_multiplier")
        )
        self.catalog = catalog or Catalog()
        self._cache: dict[tuple[str, str, date, int, bool], Rates | None] = {}
        self._points: dict[tuple[str, str], tuple[int, ...]] = {}
        self._check_currencies()

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        fx: FxRate | None = None,
        batch_multiplier: Decimal | None = None,
    ) -> PriceBook:
        """A book with the overrides file at ``path``."""
        return cls(Path(path), fx=fx, batch_multiplier=batch_multiplier)

    def _check_currencies(self) -> None:
        if self.overrides is None:
            return
        for entry in self.overrides.entries:
            no_rate = self.fx is None or self.fx.currency != entry.currency
            if entry.currency != "USD" and entry.per_usd is None and no_rate:
                raise ConfigError(
                    f"{self.overrides.path}, price for model '{entry.model}': it is in "
                    f"{entry.currency} but no exchange rate is given; add per_usd to the "
                    f'entry or an [fx] table with currency = "{entry.currency}".'
                )

    # -- lookup --------------------------------------------------------------------------

    def rates(
        self, provider: str | None, model: str, at: datetime | date, *, batch: bool = False
    ) -> Rates | None:
        """What ``model`` (from ``provider``) costs at ``at``; None when no source knows it."""
        moment = _moment(at)
        prov = (provider or "").strip().lower()
        name = model.strip().lower()
        segment = self._segment(prov, name, moment)
        key = (prov, name, moment.date(), segment, batch)
        if key not in self._cache:
            self._cache[key] = self._resolve(prov, name, moment, batch)
        return self._cache[key]

    def boundaries(self, provider: str | None, model: str) -> tuple[int, ...]:
        """Seconds after UTC midnight where this model's price changes (time-of-day pricing)."""
        prov, name = (provider or "").strip().lower(), model.strip().lower()
        if (prov, name) not in self._points:
            self._points[prov, name] = self._boundaries(prov, name)
        return self._points[prov, name]

    def _boundaries(self, prov: str, name: str) -> tuple[int, ...]:
        entry = self._override(prov, name, None)
        points: set[int] = set()
        # A finer split than needed is harmless, so take the list price's points for both the
        # caller's provider and an override's upstream.
        for source in {prov, (entry.upstream or prov) if entry else prov}:
            match = self.catalog.find(source, name)
            if match is not None:
                points.update(self.catalog.boundaries(match))
        return tuple(sorted(points))

    def _segment(self, prov: str, name: str, moment: datetime) -> int:
        points = self.boundaries(prov, name)
        if not points:
            return 0
        seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
        return bisect.bisect_right(points, seconds)

    def _override(self, prov: str, name: str, day: date | None) -> Override | None:
        """The override in force: provider-specific beats generic, then the latest start."""
        if self.overrides is None:
            return None
        best: tuple[int, date] | None = None
        chosen = None
        for entry in self.overrides.entries:
            if entry.model.lower() != name:
                continue
            if entry.provider is not None and entry.provider.lower() != prov:
                continue
            start = entry.valid_from or date.min
            if day is not None and start > day:
                continue
            rank = (1 if entry.provider else 0, start)
            if best is None or rank >= best:
                best, chosen = rank, entry
        return chosen

    def _resolve(self, prov: str, name: str, moment: datetime, batch: bool) -> Rates | None:
        entry = self._override(prov, name, moment.date())
        if entry is None:
            return self._listed(prov, name, moment, batch)
        per_usd = entry.per_usd
        if per_usd is None:
            per_usd = self.fx.per_usd if entry.currency != "USD" and self.fx else Decimal(1)
        if entry.multiplier is not None:
            listed = self._listed(entry.upstream or prov, name, moment, False)
            if listed is None:
                return None
            rates = replace(
                listed,
                base=listed.base.scaled(entry.multiplier),
                tiers=tuple((a, r.scaled(entry.multiplier)) for a, r in listed.tiers),
                provider=entry.provider or listed.provider,
                source=f"{entry.origin} (x{entry.multiplier} of {listed.source})",
            )
        else:
            assert entry.base is not None
            rates = Rates(
                provider=entry.provider,
                model=entry.model,
                base=entry.base,
                tiers=entry.tiers,
                source=entry.origin,
                valid_on=moment.date(),
            )
        rates = replace(
            rates,
            currency=entry.currency,
            per_usd=per_usd,
            valid_on=moment.date(),
            valid_from=entry.valid_from,
            note=entry.note,
        )
        if not batch:
            return rates
        multiplier = entry.batch_multiplier or self.batch_multiplier
        if multiplier is None:
            return None
        origin = entry.origin if entry.batch_multiplier else "book default"
        return rates.with_batch(multiplier, origin)

    def _listed(self, prov: str, name: str, moment: datetime, batch: bool) -> Rates | None:
        match = self.catalog.find(prov, name)
        if match is None:
            return None
        rates = self.catalog.rates(match, moment, batch=batch)
        if rates is None and batch and self.batch_multiplier is not None:
            plain = self.catalog.rates(match, moment)
            if plain is not None:
                return plain.with_batch(self.batch_multiplier, "book default")
        return rates

    # -- money ---------------------------------------------------------------------------

    def cost(
        self,
        provider: str | None,
        model: str,
        at: datetime | date,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        *,
        requests: int = 1,
        batch: bool = False,
    ) -> Decimal | None:
        """USD cost of ``requests`` calls with these totals; None when the price is unknown.

        Context tiers apply per request: a bucket of n requests pays the tier of its average
        request (``input_tokens / requests``).
        """
        rates = self.rates(provider, model, at, batch=batch)
        if rates is None:
            return None
        return rates.cost(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, requests=requests
        )

    def convert(self, usd: Decimal) -> Decimal:
        """USD to the book's second currency, exactly."""
        if self.fx is None:
            raise PriceError(
                "no exchange rate is configured; pass --currency and --fx, or add an [fx] table "
                "to the price overrides file."
            )
        return self.fx.from_usd(usd)

    def price_rows(
        self, table: pa.Table, *, batch: bool = False, chunk_rows: int = 1_000_000
    ) -> PricedRows:
        """Fill NULL ``cost_usd`` of store rows (``USAGE_SCHEMA``), vectorized."""
        from tokenplan.pricing.rows import price_rows

        return price_rows(self, table, batch=batch, chunk_rows=chunk_rows)


def _moment(at: datetime | date) -> datetime:
    """A datetime or date as an aware UTC datetime (naive means UTC, a date means its midnight)."""
    if isinstance(at, datetime):
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return datetime.combine(at, time(0), tzinfo=UTC)


def day_start(day: date, seconds: int) -> datetime:
    """The UTC moment ``seconds`` after midnight of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(seconds=seconds)
