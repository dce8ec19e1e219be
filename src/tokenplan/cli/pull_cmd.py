"""`tokenplan pull PROVIDER`: read a provider's usage and cost reports into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tokenplan.cli.app import AdoptOption, DbOption, app, console
from tokenplan.cli.import_cmd import load_prices
from tokenplan.cli.output import safe, usd
from tokenplan.collect.provider_pull import (
    PullSummary,
    admin_key,
    open_client,
    provider_api,
    pull,
)
from tokenplan.plan.periods import parse_when
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.timestamps import iso_utc


@app.command("pull")
def pull_(
    provider: Annotated[str, typer.Argument(help="anthropic or openai.")],
    since: Annotated[
        str | None,
        typer.Option(help="Start (inclusive), ISO 8601 UTC; default: resume the last pull."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive); default: now.")] = None,
    bucket: Annotated[str, typer.Option("--bucket", help="Usage bucket width: 1m, 1h or 1d.")] = (
        "1h"
    ),
    costs: Annotated[
        bool, typer.Option("--costs/--no-costs", help="Also pull the billed cost report.")
    ] = True,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="API base URL (default: $TOKENPLAN_<PROVIDER>_BASE_URL or the provider's).",
        ),
    ] = None,
    prices: Annotated[
        Path | None, typer.Option("--prices", help="TOML file of price overrides.")
    ] = None,
    db: DbOption = None,
    adopt: AdoptOption = False,
) -> None:
    """Pull usage (and billed cost) from the organization APIs; admin key from the environment.

    ANTHROPIC_ADMIN_KEY or OPENAI_ADMIN_KEY. Resumable and idempotent: each page is saved with
    the last complete bucket, and re-pulling a range replaces what it stored before.
    """
    api = provider_api(provider)
    key = admin_key(api)
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")
    book = load_prices(prices)
    with (
        open_client(api, key, base_url=base_url) as client,
        open_store(resolve_db_path(db), mode="write", adopt=adopt) as store,
    ):
        summary = pull(
            store,
            api,
            client,
            key=key,
            since=start,
            until=end,
            prices=book,
            bucket_width=bucket,
            costs=costs,
        )
    console.print(summary_table(summary))


def summary_table(s: PullSummary) -> Table:
    """The pull summary as a two-column table."""
    table = Table(title=f"pulled {s.provider} usage", show_header=False)
    table.add_column("what")
    table.add_column("value")
    stored = f"{s.inserted:,} new, {s.duplicates:,} already present"
    if s.replaced:
        stored += f", {s.replaced:,} replaced by newer numbers"
    rows = [
        ("range", f"{iso_utc(s.since)} … {iso_utc(s.until)}"),
        ("pages", f"{s.pages:,}"),
        ("rows read", f"{s.rows_read:,}"),
        ("stored", stored),
        ("open buckets", f"{s.open_buckets:,} (replaced by the next pull)"),
        ("complete up to", iso_utc(s.complete_until) if s.complete_until else "—"),
        ("cost lines", f"{s.cost_lines_new:,} new, {s.cost_lines_updated:,} updated"),
        ("billed (USD)", usd(s.billed_usd)),
        ("unpriced models", ", ".join(s.unpriced_models) or "none"),
    ]
    rows += [("note", note) for note in s.notes]
    for what, value in rows:
        table.add_row(what, safe(value))
    return table
