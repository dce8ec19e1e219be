"""`pull`: read a provider's organization usage and cost reports over HTTP into the store.

Anthropic: ``/v1/organizations/usage_report/messages`` and ``/v1/organizations/cost_report``
(``x-api-key`` admin key). OpenAI: ``/v1/organization/usage/completions`` and
``/v1/organization/costs`` (bearer admin key). Usage pages are parsed by the same code as the
exported report files (`anthropic_usage`, `openai_usage`), so a pulled bucket and an imported
one have the same id and are stored once.

Each page is saved in its own transaction with the checkpoint (the end of the last bucket that
is complete: ended at least ``settle`` before now), so an interrupted pull resumes where it
stopped. Buckets still open are stored too, and replaced by the next pull of their range.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from tokenplan.collect import anthropic_usage, cost_reports, openai_usage
from tokenplan.collect.columns import is_batch, mark_stated_costs
from tokenplan.collect.http_pages import Retry, fetch_pages
from tokenplan.collect.importer import Pricer
from tokenplan.collect.report_pages import Page
from tokenplan.errors import InvalidInput, ProviderError
from tokenplan.events import parse_timestamp
from tokenplan.store.duckdb_store import DuckDBStore
from tokenplan.store.pulls import CostRow, checkpoint, save_cost_page, save_usage_page

Clock = Callable[[], datetime]
# A bucket counts as complete this long after it ends: the providers' reports lag a little.
SETTLE = timedelta(hours=1)
# Buckets per page: each API's maximum for the width.
_LIMITS = {"1m": 1440, "1h": 168, "1d": 31}
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ProviderApi:
    """Where and how to read one provider's reports."""

    name: str
    key_env: str
    base_env: str
    default_base: str
    usage_path: str
    costs_path: str
    headers: Callable[[str], dict[str, str]]
    usage_params: Callable[[datetime, datetime, str], list[tuple[str, str]]]
    costs_params: Callable[[datetime, datetime], list[tuple[str, str]]]
    bounds: Callable[[dict[str, Any]], tuple[datetime, datetime]]
    tables: Callable[[list[Page], str, list[str]], Iterator[pa.Table]]
    costs: Callable[[list[dict[str, Any]], str], list[CostRow]]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unix(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _anthropic_bounds(bucket: dict[str, Any]) -> tuple[datetime, datetime]:
    return (
        parse_timestamp(bucket.get("starting_at"), field="starting_at"),
        parse_timestamp(bucket.get("ending_at"), field="ending_at"),
    )


def _openai_bounds(bucket: dict[str, Any]) -> tuple[datetime, datetime]:
    return (
        parse_timestamp(bucket.get("start_time"), field="start_time"),
        parse_timestamp(bucket.get("end_time"), field="end_time"),
    )


ANTHROPIC = ProviderApi(
    name="anthropic",
    key_env="ANTHROPIC_ADMIN_KEY",
    base_env="TOKENPLAN_ANTHROPIC_BASE_URL",
    default_base="https://api.anthropic.com",
    usage_path="/v1/organizations/usage_report/messages",
    costs_path="/v1/organizations/cost_report",
    headers=lambda key: {"x-api-key": key, "anthropic-version": "2023-06-01"},
    usage_params=lambda lo, hi, width: [
        ("starting_at", _iso(lo)),
        ("ending_at", _iso(hi)),
        ("bucket_width", width),
        ("limit", str(_LIMITS[width])),
        *(
            ("group_by[]", g)
            for g in ("model", "api_key_id", "workspace_id", "service_tier", "context_window")
        ),
    ],
    costs_params=lambda lo, hi: [
        ("starting_at", _iso(lo)),
        ("ending_at", _iso(hi)),
        ("bucket_width", "1d"),
        ("group_by[]", "workspace_id"),
        ("group_by[]", "description"),
    ],
    bounds=_anthropic_bounds,
    tables=anthropic_usage.tables,
    costs=cost_reports.anthropic_costs,
)
OPENAI = ProviderApi(
    name="openai",
    key_env="OPENAI_ADMIN_KEY",
    base_env="TOKENPLAN_OPENAI_BASE_URL",
    default_base="https://api.openai.com",
    usage_path="/v1/organization/usage/completions",
    costs_path="/v1/organization/costs",
    headers=lambda key: {"Authorization": f"Bearer {key}"},
    usage_params=lambda lo, hi, width: [
        ("start_time", _unix(lo)),
        ("end_time", _unix(hi)),
        ("bucket_width", width),
        ("limit", str(_LIMITS[width])),
        *(("group_by", g) for g in ("model", "project_id", "api_key_id", "batch")),
    ],
    costs_params=lambda lo, hi: [
        ("start_time", _unix(lo)),
        ("end_time", _unix(hi)),
        ("bucket_width", "1d"),
        ("limit", "31"),
        ("group_by", "project_id"),
        ("group_by", "line_item"),
    ],
    bounds=_openai_bounds,
    tables=openai_usage.tables,
    costs=cost_reports.openai_costs,
)
PROVIDERS: dict[str, ProviderApi] = {"anthropic": ANTHROPIC, "openai": OPENAI}


@dataclass(frozen=True, slots=True)
class PullSummary:
    """What one pull read and stored."""

    provider: str
    since: datetime
    until: datetime
    pages: int
    rows_read: int
    inserted: int
    duplicates: int
    replaced: int
    open_buckets: int
    complete_until: datetime | None
    cost_lines_new: int = 0
    cost_lines_updated: int = 0
    billed_usd: Decimal | None = None
    unpriced_models: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class _Tally:
    pages: int = 0
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    replaced: int = 0
    open_buckets: int = 0
    complete_until: datetime | None = None
    cost_new: int = 0
    cost_updated: int = 0
    billed: Decimal | None = None
    unpriced: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def provider_api(name: str) -> ProviderApi:
    """The `ProviderApi` called ``name``."""
    try:
        return PROVIDERS[name.strip().lower()]
    except KeyError:
        raise InvalidInput(
            f"unknown provider {name!r}; pull from one of {', '.join(PROVIDERS)}."
        ) from None


def admin_key(api: ProviderApi, environ: Mapping[str, str] | None = None) -> str:
    """The provider's admin key from the environment (never logged or shown)."""
    key = (os.environ if environ is None else environ).get(api.key_env, "").strip()
    if not key:
        raise InvalidInput(
            f"{api.key_env} is not set; export an organization admin key of {api.name} in it "
            "(admin keys are read from the environment only, never from options or files)."
        )
    return key


def open_client(
    api: ProviderApi,
    key: str,
    *,
    base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> httpx.Client:
    """An httpx client for ``api``: base URL from the argument, the environment or the default."""
    env = os.environ if environ is None else environ
    base = base_url or env.get(api.base_env) or api.default_base
    return httpx.Client(
        base_url=base.rstrip("/"),
        headers={**api.headers(key), "user-agent": "tokenplan"},
        timeout=timeout_s,
    )


def pull(
    store: DuckDBStore,
    api: ProviderApi,
    client: httpx.Client,
    *,
    key: str,
    since: datetime | None = None,
    until: datetime | None = None,
    clock: Clock = lambda: datetime.now(UTC),
    prices: Pricer | None = None,
    bucket_width: str = "1h",
    costs: bool = True,
    retry: Retry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    settle: timedelta = SETTLE,
) -> PullSummary:
    """Pull ``api``'s usage (and cost) reports for ``[since, until)`` into ``store``.

    Without ``since`` the pull resumes at the last complete bucket of an earlier pull.
    """
    if bucket_width not in _LIMITS:
        raise InvalidInput(f"--bucket {bucket_width!r}: use one of {', '.join(_LIMITS)}.")
    now = clock().astimezone(UTC)
    end = (until or now).astimezone(UTC)
    start = _start(store, api, "usage", since)
    if start >= end:
        raise InvalidInput(
            f"nothing to pull: the range starts at {_iso(start)}, not before its end {_iso(end)}."
        )
    retry = retry or Retry()
    rng = rng or random.Random()
    cutoff = now - settle
    tally = _Tally()
    fetch = {"retry": retry, "sleep": sleep, "rng": rng, "secret": key}
    try:
        _pull_usage(store, api, client, start, end, bucket_width, cutoff, prices, tally, fetch)
        if costs:
            cost_start = _start(store, api, "costs", since, fallback=start)
            day = cost_start.replace(hour=0, minute=0, second=0, microsecond=0)
            _pull_costs(store, api, client, day, end, cutoff, tally, fetch)
    except ProviderError as exc:
        saved = (
            f"{tally.pages} pages were saved"
            + (f", complete up to {_iso(tally.complete_until)}" if tally.complete_until else "")
            if tally.pages
            else "nothing was saved"
        )
        raise ProviderError(
            f"{api.name} pull: {exc} ({saved}; run the pull again without --since to resume.)"
        ) from None
    return PullSummary(
        provider=api.name,
        since=start,
        until=end,
        pages=tally.pages,
        rows_read=tally.rows,
        inserted=tally.inserted,
        duplicates=tally.duplicates,
        replaced=tally.replaced,
        open_buckets=tally.open_buckets,
        complete_until=tally.complete_until,
        cost_lines_new=tally.cost_new,
        cost_lines_updated=tally.cost_updated,
        billed_usd=tally.billed,
        unpriced_models=tuple(sorted(tally.unpriced)),
        notes=tuple(dict.fromkeys(tally.notes)),
    )


def _start(
    store: DuckDBStore,
    api: ProviderApi,
    report: str,
    since: datetime | None,
    fallback: datetime | None = None,
) -> datetime:
    if since is not None:
        return since.astimezone(UTC)
    mark = checkpoint(store, api.name, report)
    if mark is not None:
        return mark.replace(tzinfo=UTC)
    if fallback is not None:
        return fallback
    raise InvalidInput(
        f"no earlier {api.name} pull to resume from in this store; give --since "
        "(e.g. --since 2025-08-01) for the first pull."
    )


def _pull_usage(
    store: DuckDBStore,
    api: ProviderApi,
    client: httpx.Client,
    start: datetime,
    end: datetime,
    width: str,
    cutoff: datetime,
    prices: Pricer | None,
    tally: _Tally,
    fetch: dict[str, Any],
) -> None:
    name = f"{api.name} API {api.usage_path}"
    settled = True  # until the first open bucket: the checkpoint only moves over settled ones
    params = api.usage_params(start, end, width)
    for number, (body, _) in enumerate(fetch_pages(client, api.usage_path, params, **fetch), 1):
        buckets = _bounds(api, body, name, number)
        if not buckets:
            tally.pages += 1
            continue
        complete = None
        for _lo, hi in buckets:
            settled = settled and hi <= cutoff
            if settled:
                complete = hi
        # has_more is followed here; the file importer's "fetch next_page too" note is moot.
        page = Page(number, None, {**body, "has_more": False})
        tables = list(api.tables([page], name, tally.notes))
        rows = _priced(tables, prices, tally)
        naive_cutoff = cutoff.replace(tzinfo=None)
        ends = pc.add(
            rows.column("ts"),
            pc.cast(
                pc.multiply(pc.cast(rows.column("bucket_s"), pa.int64()), 1_000_000),
                pa.duration("us"),
            ),
        )
        open_rows = rows.filter(pc.greater(ends, pa.scalar(naive_cutoff, pa.timestamp("us"))))
        partial = list(
            zip(
                open_rows.column("request_id").to_pylist(),
                open_rows.column("ts").to_pylist(),
                strict=True,
            )
        )
        span = (
            min(lo for lo, _ in buckets).replace(tzinfo=None),
            max(hi for _, hi in buckets).replace(tzinfo=None),
        )
        result = save_usage_page(
            store,
            api.name,
            rows,
            span=span,
            partial=partial,
            complete_until=None if complete is None else complete.replace(tzinfo=None),
        )
        tally.pages += 1
        tally.rows += rows.num_rows
        tally.inserted += result.inserted
        tally.duplicates += result.duplicates
        tally.replaced += result.replaced
        tally.open_buckets += sum(1 for _, hi in buckets if hi > cutoff)
        if complete is not None:
            tally.complete_until = complete


def _pull_costs(
    store: DuckDBStore,
    api: ProviderApi,
    client: httpx.Client,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    tally: _Tally,
    fetch: dict[str, Any],
) -> None:
    name = f"{api.name} API {api.costs_path}"
    settled = True
    params = api.costs_params(start, end)
    for number, (body, _) in enumerate(fetch_pages(client, api.costs_path, params, **fetch), 1):
        buckets = _bounds(api, body, name, number)
        complete = None
        for _lo, hi in buckets:
            settled = settled and hi <= cutoff
            if settled:
                complete = hi
        lines = api.costs([body], f"{name} page {number}")
        new, updated = save_cost_page(
            store,
            api.name,
            lines,
            complete_until=None if complete is None else complete.replace(tzinfo=None),
        )
        tally.cost_new += new
        tally.cost_updated += updated
        for line in lines:
            if line.amount_usd is not None:
                tally.billed = line.amount_usd + (tally.billed or Decimal(0))


def _bounds(
    api: ProviderApi, body: dict[str, Any], name: str, number: int
) -> list[tuple[datetime, datetime]]:
    out = []
    for b, bucket in enumerate(body["data"], start=1):
        if not isinstance(bucket, dict):
            raise InvalidInput(f"{name} (page {number}), bucket {b}: expected an object.")
        try:
            out.append(api.bounds(bucket))
        except InvalidInput as exc:
            raise InvalidInput(f"{name} (page {number}), bucket {b}: {exc}") from None
    return out


def _priced(tables: list[pa.Table], prices: Pricer | None, tally: _Tally) -> pa.Table:
    from tokenplan.events import USAGE_SCHEMA

    out = []
    for table in map(mark_stated_costs, tables):
        if prices is not None and table.column("cost_usd").null_count:
            result = prices.price_rows(table, batch=is_batch(table))
            tally.unpriced.update(result.unpriced_models)
            tally.notes.extend(result.notes)
            table = result.table
        out.append(table.replace_schema_metadata(None).cast(USAGE_SCHEMA))
    if not out:
        return USAGE_SCHEMA.empty_table()
    return pa.concat_tables(out)
