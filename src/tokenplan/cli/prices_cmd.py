"""`tokenplan prices MODEL`: what a model will be charged per million tokens, and an example."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table
from rich.text import Text

from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.output import OutputFormat, safe, to_csv
from tokenplan.errors import InvalidInput, PriceError
from tokenplan.pricing import FxRate, PriceBook, Rates, TierRates, parse_fx

EXAMPLE_FILE = "src/tokenplan/data/prices.example.toml"
_COLUMNS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


@app.command("prices")
def prices(
    model: Annotated[
        str | None, typer.Argument(help="Model name as the provider spells it.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Provider or relay name.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Date or time (UTC) to price at; default: now."),
    ] = None,
    overrides: Annotated[
        Path | None, typer.Option("--prices", help="TOML file of price overrides.")
    ] = None,
    currency: Annotated[
        str | None, typer.Option("--currency", help="Second currency to show, e.g. CNY.")
    ] = None,
    fx: Annotated[
        str | None, typer.Option("--fx", help="Units of --currency per USD, e.g. 7.3.")
    ] = None,
    input_tokens: Annotated[
        int, typer.Option("--input", min=0, help="Example request: input tokens (incl. cached).")
    ] = 10_000,
    output_tokens: Annotated[
        int, typer.Option("--output", min=0, help="Example request: output tokens.")
    ] = 1_000,
    cache_read: Annotated[
        int, typer.Option("--cache-read", min=0, help="Example request: cache-read tokens.")
    ] = 0,
    cache_write: Annotated[
        int, typer.Option("--cache-write", min=0, help="Example request: cache-write tokens.")
    ] = 0,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table or json (csv too with --missing).")
    ] = OutputFormat.table,
    missing: Annotated[
        bool,
        typer.Option("--missing", help="List the stored models without a price instead."),
    ] = False,
    db: DbOption = None,
) -> None:
    """Show what MODEL will be charged per million tokens (tiers, cache, batch) and an example.

    With --missing: the models in the store whose usage has no known cost, with its volume.
    """
    if missing:
        show_missing(db, fmt)
        return
    if model is None:
        raise InvalidInput("give a MODEL to price, or --missing to list unpriced models.")
    if fmt is OutputFormat.csv:
        raise InvalidInput(
            "--format csv is for --missing; a model's prices print as table or json."
        )
    moment = parse_moment(at)
    rate = parse_fx(currency, fx)
    book = PriceBook(overrides, fx=rate)
    rates = book.rates(provider, model, moment)
    if rates is None:
        raise PriceError(
            f"no price known for model '{model}'"
            + (f" from provider '{provider}'" if provider else "")
            + f" on {moment.date()}; add it to an overrides file (see {EXAMPLE_FILE}) "
            "and pass it with --prices."
        )
    if cache_read + cache_write > input_tokens:
        raise InvalidInput(
            "--cache-read plus --cache-write exceed --input; input tokens include cached ones."
        )
    batch = book.rates(provider, model, moment, batch=True)
    usage = (input_tokens, output_tokens, cache_read, cache_write)
    example = rates.cost(*usage)
    batch_example = batch.cost(*usage) if batch else None
    if currency and (book.fx is None or book.fx.currency != currency.strip().upper()):
        raise InvalidInput(
            f"--currency {currency}: no exchange rate; add --fx (units per USD, e.g. 7.3) or an "
            f"[fx] table for {currency} in the --prices file."
        )
    second = book.fx
    if fmt is OutputFormat.json:
        payload = {
            "model": rates.model,
            "provider": rates.provider,
            "source": rates.source,
            "valid_on": rates.valid_on.isoformat(),
            "valid_from": rates.valid_from.isoformat() if rates.valid_from else None,
            "currency": rates.currency,
            "per_mtok": _json_tiers(rates),
            "batch_per_mtok": _json_tiers(batch) if batch else None,
            "example": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_read_tokens": cache_read,
                "cache_write_tokens": cache_write,
                "cost_usd": _s(example),
                "batch_cost_usd": _opt(batch_example),
                **(
                    {f"cost_{second.currency.lower()}": _s(second.from_usd(example))}
                    if second
                    else {}
                ),
            },
            "note": rates.note,
        }
        console.print_json(json.dumps(payload))
        return
    console.print(_table(rates, batch, second))
    line = (
        f"Example request: {input_tokens:,} input tokens ({cache_read:,} cache read, "
        f"{cache_write:,} cache write), {output_tokens:,} output → [bold]${_s(example)}[/bold]"
    )
    if second:
        line += f" = {_s(round(second.from_usd(example), 6))} {second.currency}"
    line += "; batch: " + (
        "unknown (no batch price on this date: set batch_multiplier in a --prices file)"
        if batch_example is None
        else f"${_s(batch_example)}"
    )
    console.print(line)
    if rates.tiers:
        above = rates.tiers[0][0]
        console.print(
            f"Context tiers apply per request: a request with more than {above:,} input tokens "
            "pays the higher rates on all its tokens."
        )
    if rates.note:
        console.print(Text("Note: ") + safe(rates.note))


def show_missing(db: str | None, fmt: OutputFormat) -> None:
    """Print the models without a price and their unpriced token volume."""
    from tokenplan.store import open_store
    from tokenplan.store.duckdb_store import resolve_db_path
    from tokenplan.store.missing_prices import missing_prices
    from tokenplan.timestamps import iso_utc

    with open_store(resolve_db_path(db), mode="read") as store:
        rows = missing_prices(store)
    items = [
        {
            "provider": r.provider,
            "model": r.model,
            "rows": r.rows,
            "requests": r.requests,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "first": iso_utc(r.first),
            "last": iso_utc(r.last),
        }
        for r in rows
    ]
    if fmt is OutputFormat.json:
        console.print_json(json.dumps({"missing": items}))
        return
    if fmt is OutputFormat.csv:
        columns = ["provider", "model", "rows", "requests", "input_tokens", "output_tokens"]
        frame = pd.DataFrame(items, columns=[*columns, "first", "last"])
        typer.echo(to_csv(frame, spreadsheet=True), nl=False)
        return
    table = Table(title="models without a price (their cost is unknown, not 0)")
    for name in ("provider", "model", "rows", "input tokens", "output tokens", "span"):
        table.add_column(name, justify="right" if "tokens" in name or name == "rows" else "left")
    for r in rows:
        table.add_row(
            safe(r.provider),
            safe(r.model),
            f"{r.rows:,}",
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            f"{iso_utc(r.first)} … {iso_utc(r.last)}",
        )
    if rows:
        table.caption = (
            f"add them to an overrides file (see {EXAMPLE_FILE}), then "
            "`tokenplan reprice --prices FILE`"
        )
    else:
        table.caption = "every stored model has a price"
    console.print(table)


def parse_moment(value: str | None) -> datetime:
    """``--at`` as an aware UTC datetime (a date means its midnight; naive means UTC)."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise InvalidInput(
            f"--at: {value!r} is not a date or ISO 8601 time (e.g. 2025-06-01)."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _table(rates: Rates, batch: Rates | None, second: FxRate | None) -> Table:
    unit = "$" if rates.currency == "USD" else f"{rates.currency} "
    title = f"{rates.model} ({rates.provider or 'any provider'}) — {unit.strip()} per MTok"
    table = Table(title=safe(title), caption=safe(_caption(rates)))
    table.add_column("price")
    for name in _COLUMNS:
        table.add_column(name.replace("_", " "), justify="right")
    has_fee = any(t.request for t in _tiers(rates))
    if has_fee:
        table.add_column("per request", justify="right")
    for label, r, tier in _rows(rates, "standard"):
        table.add_row(safe(label), *_cells(r, tier, has_fee))
        if rates.currency != "USD":
            usd = FxRate(currency="USD", per_usd=Decimal(1))
            table.add_row("  in USD", *_converted(r, tier, usd, has_fee), style="dim")
        if second and second.currency != rates.currency:
            table.add_row(
                f"  in {second.currency}", *_converted(r, tier, second, has_fee), style="dim"
            )
    if batch:
        for label, r, tier in _rows(batch, "batch"):
            table.add_row(safe(label), *_cells(r, tier, has_fee))
    else:
        table.add_row("batch", "unknown", *[""] * (len(_COLUMNS) - 1 + has_fee), style="dim")
    return table


def _caption(rates: Rates) -> str:
    parts = [f"source: {rates.source}", f"priced at {rates.valid_on}"]
    if rates.valid_from:
        parts.append(f"in force since {rates.valid_from}")
    if rates.currency != "USD":
        parts.append(f"{rates.per_usd} {rates.currency} = 1 USD")
    return "; ".join(parts)


def _tiers(rates: Rates) -> list[TierRates]:
    return [rates.base, *(t for _, t in rates.tiers)]


def _rows(rates: Rates, kind: str) -> list[tuple[str, Rates, TierRates]]:
    out = [(kind, rates, rates.base)]
    out += [(f"{kind} >{above:,} input", rates, t) for above, t in rates.tiers]
    return out


def _cells(rates: Rates, tier: TierRates, fee: bool) -> list[str]:
    per = rates.per_mtok(tier)
    cells = [_opt(per[c]) or "—" for c in _COLUMNS]
    return cells + ([_opt(per["request"]) or "0"] if fee else [])


def _converted(rates: Rates, tier: TierRates, fx: FxRate, fee: bool) -> list[str]:
    per = rates.per_mtok(tier)
    out = []
    for name in (*_COLUMNS, *(("request",) if fee else ())):
        value = per[name]
        if value is None:
            out.append("—")
            continue
        usd = rates.to_usd(value)
        out.append(_s(round(fx.from_usd(usd), 6)))
    return out


def _json_tiers(rates: Rates) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for above, tier in [(None, rates.base), *rates.tiers]:
        per = rates.per_mtok(tier)
        rows.append({"above_input_tokens": above, **{k: _opt(v) for k, v in per.items()}})
    return rows


def _s(value: Decimal) -> str:
    """A decimal written out plainly (no exponent, no trailing zeros)."""
    return format(value.normalize(), "f")


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else _s(value)
