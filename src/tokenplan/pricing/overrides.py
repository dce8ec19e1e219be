"""The local price overrides file (TOML): relay and contract prices, batch discounts, FX.

See ``tokenplan/data/prices.example.toml`` for a documented example.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenplan.config_file import read_toml, refuse_unknown
from tokenplan.errors import ConfigError
from tokenplan.pricing.rates import MTOK, FxRate, TierRates, parse_per_usd

_TOP_KEYS = {"batch_multiplier", "fx", "prices"}
_FX_KEYS = {"currency", "per_usd"}
_RATE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
_ENTRY_KEYS = {
    "model",
    "provider",
    "currency",
    "per_usd",
    "multiplier",
    "upstream",
    "batch_multiplier",
    "valid_from",
    "tiers",
    "note",
    *_RATE_KEYS,
}
_TIER_KEYS = {"above", *_RATE_KEYS}


@dataclass(frozen=True, slots=True, kw_only=True)
class Override:
    """One price entry of an overrides file.

    Either explicit rates (``base``/``tiers``, per token in ``currency``) or ``multiplier``
    times genai-prices' list price of the model (looked up under ``upstream``).
    """

    model: str
    provider: str | None = None
    currency: str = "USD"
    per_usd: Decimal | None = None  # None: the book's FX rate for `currency`
    base: TierRates | None = None
    tiers: tuple[tuple[int, TierRates], ...] = ()
    multiplier: Decimal | None = None
    upstream: str | None = None
    batch_multiplier: Decimal | None = None
    valid_from: date | None = None
    note: str | None = None
    origin: str = "override"


@dataclass(frozen=True, slots=True, kw_only=True)
class OverridesFile:
    """A parsed overrides file."""

    path: Path
    entries: tuple[Override, ...] = ()
    fx: FxRate | None = None
    batch_multiplier: Decimal | None = None


def load_overrides(path: Path) -> OverridesFile:
    """Read and validate an overrides file; any mistake is a ConfigError naming file and key."""
    path = Path(path)
    # Decimal numbers keep `3.75` exactly 3.75, never a binary float.
    raw = read_toml(path, "price overrides", parse_float=Decimal)
    refuse_unknown(raw, _TOP_KEYS, str(path))
    fx = None
    if "fx" in raw:
        table = _table(raw["fx"], path, "fx")
        refuse_unknown(table, _FX_KEYS, f"{path}, [fx]")
        currency = _text(table.get("currency"), path, "fx.currency", required=True)
        per_usd = _rate(table.get("per_usd"), path, "fx.per_usd")
        assert per_usd is not None
        assert currency is not None
        fx = FxRate(currency=currency, per_usd=per_usd)
    batch = _money(raw.get("batch_multiplier"), path, "batch_multiplier", positive=True)
    items = raw.get("prices", [])
    if not isinstance(items, list):
        raise ConfigError(f"{path}, key 'prices': use [[prices]] tables, one per model.")
    entries = tuple(_entry(item, path, i) for i, item in enumerate(items))
    return OverridesFile(path=path, entries=entries, fx=fx, batch_multiplier=batch)


def _entry(item: Any, path: Path, i: int) -> Override:
    where = f"prices[{i}]"
    table = _table(item, path, where)
    model = _text(table.get("model"), path, f"{where}.model", required=True)
    assert model is not None
    where = f"prices[{i}] (model '{model}')"
    refuse_unknown(table, _ENTRY_KEYS, f"{path}, {where}")
    multiplier = _money(table.get("multiplier"), path, f"{where}.multiplier", positive=True)
    has_rates = any(k in table for k in _RATE_KEYS) or "tiers" in table
    if multiplier is not None and has_rates:
        raise ConfigError(
            f"{path}, {where}: give either 'multiplier' (of the genai-prices list price) or "
            "explicit rates (input, output, ...), not both."
        )
    if multiplier is None and not has_rates:
        raise ConfigError(
            f"{path}, {where}: no price given; add 'input' and 'output' per million tokens, "
            "or 'multiplier' to scale the genai-prices list price."
        )
    base = None
    tiers: list[tuple[int, TierRates]] = []
    if has_rates:
        base = _tier_rates(table, path, where)
        raw_tiers = table.get("tiers", [])
        if not isinstance(raw_tiers, list):
            raise ConfigError(f"{path}, {where}.tiers: use [[prices.tiers]] tables.")
        for j, raw_tier in enumerate(raw_tiers):
            tier_where = f"{where}.tiers[{j}]"
            tier = _table(raw_tier, path, tier_where)
            refuse_unknown(tier, _TIER_KEYS, f"{path}, {tier_where}")
            above = tier.get("above")
            if isinstance(above, bool) or not isinstance(above, int) or above < 0:
                raise ConfigError(
                    f"{path}, {tier_where}.above: {above!r} is not a whole number of input "
                    "tokens per request >= 0."
                )
            tiers.append((above, _tier_rates(tier, path, tier_where)))
        aboves = [a for a, _ in tiers]
        if len(set(aboves)) != len(aboves):
            raise ConfigError(f"{path}, {where}.tiers: two tiers start at the same 'above'.")
        tiers.sort(key=lambda t: t[0])
    valid_from = table.get("valid_from")
    if isinstance(valid_from, datetime) or not isinstance(valid_from, date | None):
        raise ConfigError(
            f"{path}, {where}.valid_from: {valid_from!r} is not a date; write e.g. 2025-06-01."
        )
    currency = _text(table.get("currency"), path, f"{where}.currency") or "USD"
    return Override(
        model=model,
        provider=_text(table.get("provider"), path, f"{where}.provider"),
        currency=currency.upper(),
        per_usd=_rate(table.get("per_usd"), path, f"{where}.per_usd", required=False),
        base=base,
        tiers=tuple(tiers),
        multiplier=multiplier,
        upstream=_text(table.get("upstream"), path, f"{where}.upstream"),
        batch_multiplier=_money(
            table.get("batch_multiplier"), path, f"{where}.batch_multiplier", positive=True
        ),
        valid_from=valid_from,
        note=_text(table.get("note"), path, f"{where}.note"),
        origin=f"override {path}",
    )


def _tier_rates(table: dict[str, Any], path: Path, where: str) -> TierRates:
    values = {k: _money(table.get(k), path, f"{where}.{k}") for k in _RATE_KEYS}
    inp, out = values["input"], values["output"]
    if inp is None or out is None:
        missing = "input" if inp is None else "output"
        raise ConfigError(f"{path}, {where}: '{missing}' (price per million tokens) is missing.")
    read, write, hour = values["cache_read"], values["cache_write"], values["cache_write_1h"]
    # Unpriced cache tokens are charged as plain input, as genai-prices does.
    return TierRates(
        input=inp / MTOK,
        output=out / MTOK,
        cache_read=(inp if read is None else read) / MTOK,
        cache_write=(inp if write is None else write) / MTOK,
        cache_write_1h=None if hour is None else hour / MTOK,
    )


def _table(value: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}, key '{where}': expected a table, got {value!r}.")
    return value


def _text(value: Any, path: Path, where: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ConfigError(f"{path}, key '{where}': is missing.")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}, key '{where}': {value!r} is not a non-empty string.")
    return value.strip()


def _rate(value: Any, path: Path, where: str, *, required: bool = True) -> Decimal | None:
    if value is None and not required:
        return None
    try:
        return parse_per_usd(value)
    except ValueError as exc:
        raise ConfigError(f"{path}, key '{where}': {exc}; give units per USD, e.g. 7.3.") from None


def _money(value: Any, path: Path, where: str, *, positive: bool = False) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{path}, key '{where}': {value!r} is not a number.")
    try:
        dec = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (ArithmeticError, ValueError, TypeError):
        raise ConfigError(f"{path}, key '{where}': {value!r} is not a number.") from None
    if not dec.is_finite() or dec < 0 or (positive and dec == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{path}, key '{where}': {value!r} must be a number {bound}.")
    return dec
