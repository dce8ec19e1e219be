"""Resolved prices of one model at one moment: per-token rates, context tiers and FX rates.

Rates are kept in the currency they are quoted in (USD for genai-prices; an override may quote
CNY) and converted to USD once, on the final amount, so a relay's CNY prices stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext

MTOK = Decimal(1_000_000)
USD_QUANTUM = Decimal("1e-12")  # the store's cost_usd scale, decimal128(38, 12)
_PREC = 80  # enough digits that no product or quotient here is ever rounded by the context
# Real rates run from about 0.3 (KWD) to about 10^5 (IRR, VND) units per USD. Far outside that
# is a typo (or 1e999, which Decimal accepts and which overflows the first rounding).
FX_MIN = Decimal("1e-6")
FX_MAX = Decimal("1e9")


def to_decimal(value: Decimal | int | str, what: str) -> Decimal:
    """Coerce an exact number to Decimal; floats are refused because they are not exact."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"{what} must be a Decimal, int or str, not {type(value).__name__}.")
    dec = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    if not dec.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value!r}.")
    return dec


def parse_per_usd(value: object) -> Decimal:
    """An exchange rate (units per USD) from text or a number; `ValueError` says what is wrong."""
    if isinstance(value, bool | float):
        value = str(value)  # a TOML or JSON float: its shortest text is what the user wrote
    shown = repr(value if isinstance(value, str) else str(value))
    try:
        rate = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)  # type: ignore[arg-type]
    except (ArithmeticError, ValueError, TypeError):
        raise ValueError(f"{shown} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"{shown} is not a positive number (> 0)")
    if not FX_MIN <= rate <= FX_MAX:
        raise ValueError(f"{shown} is outside {FX_MIN:g}..{FX_MAX:g} units per USD")
    return rate


def round_usd(amount: Decimal) -> Decimal:
    """Round an amount to the store's 1e-12 USD, half up (costs are never negative)."""
    with localcontext() as ctx:
        ctx.prec = _PREC
        return amount.quantize(USD_QUANTUM, rounding=ROUND_HALF_UP)


def parse_fx(currency: str | None, per_usd: str | None) -> FxRate | None:
    """``--currency`` and ``--fx`` text as an exact `FxRate`; None when no rate is given.

    A rate needs its currency; a currency alone is None (the caller may find its rate in a
    prices or budgets file, or refuse it). Errors name the option and show a valid example.
    """
    from tokenplan.errors import InvalidInput

    if per_usd is None:
        return None
    if currency is None or not currency.strip():
        raise InvalidInput("--fx needs --currency, e.g. --currency CNY --fx 7.3.")
    code = currency.strip().upper()
    try:
        rate = parse_per_usd(per_usd)
    except ValueError as exc:
        raise InvalidInput(
            f"--fx: {exc}; it must be a positive number of {code} per USD, e.g. 7.3."
        ) from None
    return FxRate(currency=currency, per_usd=rate)


@dataclass(frozen=True, slots=True, kw_only=True)
class FxRate:
    """An explicit exchange rate: ``per_usd`` units of ``currency`` buy one US dollar."""

    currency: str = "CNY"
    per_usd: Decimal = Decimal("7.3")

    def __post_init__(self) -> None:
        per_usd = to_decimal(self.per_usd, "per_usd")
        try:
            parse_per_usd(per_usd)
        except ValueError as exc:
            raise ValueError(f"per_usd: {exc}.") from None
        object.__setattr__(self, "per_usd", per_usd)
        object.__setattr__(self, "currency", self.currency.strip().upper())

    def from_usd(self, usd: Decimal) -> Decimal:
        """USD to this currency, exactly."""
        with localcontext() as ctx:
            ctx.prec = _PREC
            return usd * self.per_usd

    def to_usd(self, amount: Decimal) -> Decimal:
        """This currency to USD, rounded half up to 1e-12 USD (the store's precision)."""
        with localcontext() as ctx:
            ctx.prec = _PREC
            return round_usd(amount / self.per_usd)


@dataclass(frozen=True, slots=True, kw_only=True)
class TierRates:
    """Per-token rates of one context tier, in the price's currency."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal  # 5-minute writes where a provider distinguishes them
    cache_write_1h: Decimal | None = None
    request: Decimal = Decimal(0)  # a fee per request (Perplexity), not per token

    def scaled(self, factor: Decimal) -> TierRates:
        """Every rate multiplied by ``factor`` (a batch discount, a relay's markup)."""
        hour = self.cache_write_1h
        with localcontext() as ctx:
            ctx.prec = _PREC
            return TierRates(
                input=self.input * factor,
                output=self.output * factor,
                cache_read=self.cache_read * factor,
                cache_write=self.cache_write * factor,
                cache_write_1h=None if hour is None else hour * factor,
                request=self.request * factor,
            )

    @property
    def hour_write(self) -> Decimal:
        """Rate per 1-hour cache-write token: the listed one, else Anthropic's 2x input."""
        return self.cache_write_1h if self.cache_write_1h is not None else 2 * self.input

    def amount(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        requests: int = 1,
        cache_write_1h_tokens: int = 0,
    ) -> Decimal:
        """Exact charge in the price's currency; ``input_tokens`` includes cached tokens.

        ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written for an hour.
        """
        uncached = input_tokens - cache_read_tokens - cache_write_tokens
        short_writes = cache_write_tokens - cache_write_1h_tokens
        with localcontext() as ctx:
            ctx.prec = _PREC
            return (
                uncached * self.input
                + cache_read_tokens * self.cache_read
                + short_writes * self.cache_write
                + cache_write_1h_tokens * self.hour_write
                + output_tokens * self.output
                + requests * self.request
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """What one model costs at one moment: base rates, context tiers, source and currency.

    ``tiers`` holds ``(above, rates)`` pairs in ascending order: a request whose input tokens
    exceed ``above`` pays ``rates`` on all its tokens (the providers' "cliff" tiers).
    """

    provider: str | None
    model: str
    base: TierRates
    tiers: tuple[tuple[int, TierRates], ...] = ()
    source: str
    valid_on: date
    valid_from: date | None = None
    currency: str = "USD"
    per_usd: Decimal = Decimal(1)
    batch: bool = False
    note: str | None = None

    @property
    def input(self) -> Decimal:
        """Base-tier rate per uncached input token."""
        return self.base.input

    @property
    def output(self) -> Decimal:
        """Base-tier rate per output token."""
        return self.base.output

    @property
    def cache_read(self) -> Decimal:
        """Base-tier rate per cache-read token."""
        return self.base.cache_read

    @property
    def cache_write(self) -> Decimal:
        """Base-tier rate per cache-write token (5-minute TTL where it matters)."""
        return self.base.cache_write

    @property
    def cache_write_1h(self) -> Decimal | None:
        """Base-tier rate per 1-hour cache-write token, where known."""
        return self.base.cache_write_1h

    def tier_for(self, input_tokens: int, requests: int = 1) -> TierRates:
        """The tier a request (or the average of ``requests`` requests) falls in."""
        chosen = self.base
        for above, rates in self.tiers:
            # input/requests > above, compared without dividing so it stays exact
            if input_tokens > above * requests:
                chosen = rates
        return chosen

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        *,
        requests: int = 1,
        cache_write_1h_tokens: int = 0,
    ) -> Decimal:
        """USD cost of ``requests`` calls with these token totals (tier by per-request average).

        Exact for USD prices; prices in another currency are converted once and rounded to
        1e-12 USD.
        """
        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cache_read_tokens", cache_read_tokens),
            ("cache_write_tokens", cache_write_tokens),
            ("requests", requests),
            ("cache_write_1h_tokens", cache_write_1h_tokens),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        if cache_read_tokens + cache_write_tokens > input_tokens:
            raise ValueError(
                f"cache reads plus writes ({cache_read_tokens + cache_write_tokens}) exceed "
                f"input_tokens ({input_tokens}); input_tokens must include cached tokens."
            )
        if cache_write_1h_tokens > cache_write_tokens:
            raise ValueError(
                f"cache_write_1h_tokens ({cache_write_1h_tokens}) exceed cache_write_tokens "
                f"({cache_write_tokens}), which include them."
            )
        tier = self.tier_for(input_tokens, max(requests, 1))
        amount = tier.amount(
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            requests,
            cache_write_1h_tokens,
        )
        return self.to_usd(amount)

    def to_usd(self, amount: Decimal) -> Decimal:
        """An amount in this price's currency as USD (exact when already USD)."""
        if self.per_usd == 1:
            return amount
        return FxRate(currency=self.currency, per_usd=self.per_usd).to_usd(amount)

    def per_mtok(self, tier: TierRates | None = None) -> dict[str, Decimal | None]:
        """Rates per million tokens, in this price's currency, for display."""
        t = tier or self.base
        with localcontext() as ctx:
            ctx.prec = _PREC
            return {
                "input": (t.input * MTOK).normalize(),
                "output": (t.output * MTOK).normalize(),
                "cache_read": (t.cache_read * MTOK).normalize(),
                "cache_write": (t.cache_write * MTOK).normalize(),
                "cache_write_1h": None
                if t.cache_write_1h is None
                else (t.cache_write_1h * MTOK).normalize(),
                "request": t.request.normalize(),
            }

    def with_batch(self, multiplier: Decimal, source: str) -> Rates:
        """These rates discounted for a batch API by ``multiplier``."""
        return replace(
            self,
            base=self.base.scaled(multiplier),
            tiers=tuple((above, r.scaled(multiplier)) for above, r in self.tiers),
            batch=True,
            source=f"{self.source}; batch x{multiplier} ({source})",
        )
