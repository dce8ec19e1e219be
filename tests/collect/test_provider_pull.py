"""`pull` against a loopback stand-in of the providers' admin APIs: pages, retries, resume."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from provider_api import (
    A_COSTS,
    A_USAGE,
    KEY,
    O_COSTS,
    O_USAGE,
    OPENAI_KEY,
    ProviderApi,
    Reply,
    anthropic_cost_bucket,
    anthropic_usage_bucket,
    hours,
    openai_cost_bucket,
    openai_usage_bucket,
)

from tokenplan.collect.http_pages import Retry
from tokenplan.collect.provider_pull import ANTHROPIC, OPENAI, admin_key, open_client, pull
from tokenplan.errors import InvalidInput, ProviderError
from tokenplan.pricing import PriceBook
from tokenplan.store import DuckDBStore
from tokenplan.store.pulls import checkpoint

T0 = datetime(2025, 8, 1, tzinfo=UTC)
NOW = datetime(2025, 8, 2, 5, 30, tzinfo=UTC)  # 30 hourly buckets exist; the last two are open
FAST = Retry(attempts=4, base_s=0.5, cap_s=4.0)


class Sleeps(list[float]):
    """A sleep that records its waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _anthropic(api: ProviderApi, scale_open: int = 1) -> None:
    api.buckets[A_USAGE] = [
        anthropic_usage_bucket(lo, hi, scale=scale_open if hi > NOW - timedelta(hours=1) else 1)
        for lo, hi in hours(T0, 30)
    ]
    api.buckets[A_COSTS] = [
        anthropic_cost_bucket(T0, T0 + timedelta(days=1), "1234.5"),
        anthropic_cost_bucket(T0 + timedelta(days=1), T0 + timedelta(days=2), "99"),
    ]


def _expected_anthropic(count: int = 30) -> tuple[int, int]:
    inp = sum(1000 * (lo.hour + 1) + 600 + 10 for lo, _ in hours(T0, count))
    out = sum(50 * (lo.hour + 1) + 5 for lo, _ in hours(T0, count))
    return inp, out


def _totals(store: DuckDBStore) -> tuple[object, ...]:
    return store.connection.execute(
        "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
        "sum(cache_write_tokens) FROM usage"
    ).fetchall()[0]


def _pull(store: DuckDBStore, api: ProviderApi, **kw: object):  # type: ignore[no-untyped-def]
    provider = kw.pop("provider", ANTHROPIC)
    key = KEY if provider is ANTHROPIC else OPENAI_KEY
    options = {"since": T0, "clock": lambda: NOW, "retry": FAST, "sleep": Sleeps()}
    options.update(kw)
    with open_client(provider, key, base_url=api.url) as client:  # type: ignore[arg-type]
        return pull(store, provider, client, key=key, **options)  # type: ignore[arg-type]


def test_anthropic_pull_follows_pages_and_stores_the_convention() -> None:
    with ProviderApi(page_size=7) as api, DuckDBStore(":memory:") as store:
        _anthropic(api)
        summary = _pull(store, api)
        inp, out = _expected_anthropic()
        # input includes cache reads and both cache writes (tokenplan's convention).
        assert _totals(store) == (60, inp, out, 30 * 300, 30 * 300)
        assert summary.pages == 5  # 30 buckets, 7 a page
        assert summary.rows_read == 60
        assert summary.open_buckets == 2
        assert summary.complete_until == datetime(2025, 8, 2, 4, tzinfo=UTC)
        assert checkpoint(store, "anthropic", "usage") == datetime(2025, 8, 2, 4)
        first = next(api.requests_to(A_USAGE))
        assert first.headers["x-api-key"] == KEY
        assert first.query["starting_at"] == ["2025-08-01T00:00:00Z"]
        assert first.query["bucket_width"] == ["1h"]
        assert set(first.query["group_by[]"]) >= {"model", "api_key_id", "workspace_id"}
        cursors = [r.query.get("page") for r in api.requests_to(A_USAGE)]
        assert cursors == [None, ["cursor-7"], ["cursor-14"], ["cursor-21"], ["cursor-28"]]
        # Cost report: cents as decimal strings, stored in dollars.
        costs = store.connection.execute(
            "SELECT ts, amount_usd, model FROM provider_costs ORDER BY ts"
        ).fetchall()
    assert costs == [
        (datetime(2025, 8, 1), Decimal("12.345"), "claude-sonnet-4-5-20250929"),
        (datetime(2025, 8, 2), Decimal("0.99"), "claude-sonnet-4-5-20250929"),
    ]
    assert summary.billed_usd == Decimal("13.335")


def test_openai_pull_with_costs_in_dollars() -> None:
    with ProviderApi(page_size=10) as api, DuckDBStore(":memory:") as store:
        api.buckets[O_USAGE] = [openai_usage_bucket(lo, hi) for lo, hi in hours(T0, 30)]
        api.buckets[O_COSTS] = [
            openai_cost_bucket(T0, T0 + timedelta(days=1), "0.06"),
            openai_cost_bucket(T0 + timedelta(days=1), T0 + timedelta(days=2), "1.5"),
        ]
        summary = _pull(store, api, provider=OPENAI, prices=PriceBook())
        row = store.connection.execute(
            "SELECT sum(requests), sum(input_tokens), sum(cache_read_tokens), "
            "count(cost_usd) FROM usage"
        ).fetchall()[0]
        costs = store.connection.execute(
            "SELECT sum(amount_usd), min(model), min(item) FROM provider_costs"
        ).fetchall()[0]
        first = next(api.requests_to(O_USAGE))
    hs = [lo.hour + 1 for lo, _ in hours(T0, 30)]
    assert row == (sum(10 * h for h in hs), sum(2000 * h for h in hs), 30 * 500, 30)
    assert costs == (Decimal("1.56"), "gpt-4o-2024-08-06", "gpt-4o-2024-08-06, input")
    assert first.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert first.query["start_time"] == [str(int(T0.timestamp()))]
    assert summary.pages == 3


def test_a_429_is_retried_after_what_retry_after_says() -> None:
    with ProviderApi(page_size=50) as api, DuckDBStore(":memory:") as store:
        _anthropic(api)
        api.fail(
            A_USAGE, Reply(429, '{"error": {"type": "rate_limit_error"}}', {"retry-after": "7"})
        )
        sleeps = Sleeps()
        _pull(store, api, sleep=sleeps, costs=False)
        assert _totals(store)[0] == 60
    assert sleeps == [7.0]


def test_5xx_backoff_is_full_jitter_within_the_exponential_cap() -> None:
    with ProviderApi(page_size=50) as api, DuckDBStore(":memory:") as store:
        _anthropic(api)
        api.fail(A_USAGE, Reply(500), Reply(503), Reply(502))
        sleeps = Sleeps()
        _pull(store, api, sleep=sleeps, costs=False, rng=random.Random(3))
        assert _totals(store)[0] == 60
    assert len(sleeps) == 3
    for n, wait in enumerate(sleeps, start=1):
        assert 0 <= wait <= min(FAST.cap_s, FAST.base_s * 2 ** (n - 1))


def test_exhausted_retries_fail_clearly_and_leave_the_store_unchanged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with ProviderApi() as api, DuckDBStore(":memory:") as store:
        _anthropic(api)
        api.fail(A_USAGE, *[Reply(500)] * FAST.attempts)
        with pytest.raises(ProviderError) as err:
            _pull(store, api)
        assert _totals(store)[0] == 0
        assert checkpoint(store, "anthropic", "usage") is None
    message = str(err.value)
    assert "after 4 attempts" in message
    assert "HTTP 500" in message
    assert "nothing was saved" in message
    assert KEY not in message
    assert KEY not in caplog.text
    assert "retrying" in caplog.text


def test_an_interrupted_pull_resumes_at_the_last_complete_bucket() -> None:
    with ProviderApi(page_size=7) as api, DuckDBStore(":memory:") as store:
        _anthropic(api)
        # Pages 1 and 2 arrive; page 3 keeps failing.
        real = api._data

        def flaky(path, query, headers):  # type: ignore[no-untyped-def]
            if path == A_USAGE and query.get("page") == ["cursor-14"]:
                return Reply(503)
            return real(path, query, headers)

        api._data = flaky  # type: ignore[method-assign]
        with pytest.raises(ProviderError, match="2 pages were saved, complete up to"):
            _pull(store, api, costs=False)
        assert _totals(store)[0] == 28
        mark = checkpoint(store, "anthropic", "usage")
        assert mark == datetime(2025, 8, 1, 14)
        api._data = real  # type: ignore[method-assign]
        resumed = _pull(store, api, since=None, costs=False)
        inp, out = _expected_anthropic()
        assert _totals(store)[:3] == (60, inp, out)
        last = [r for r in api.requests_to(A_USAGE) if "page" not in r.query][-1]
    assert last.query["starting_at"] == ["2025-08-01T14:00:00Z"]
    assert resumed.inserted == 32


def test_re_pulling_the_same_range_never_double_counts() -> None:
    with ProviderApi(page_size=9) as api, DuckDBStore(":memory:") as store:
        _anthropic(api)
        _pull(store, api)
        before = _totals(store)
        again = _pull(store, api)
        assert _totals(store) == before
        lines = store.connection.execute("SELECT count(*) FROM provider_costs").fetchall()
    # The 4 rows of the 2 open buckets are written afresh each time; settled ones are kept.
    assert (again.inserted, again.duplicates, again.replaced) == (0, 56, 4)
    assert lines == [(2,)]
    assert (again.cost_lines_new, again.cost_lines_updated) == (0, 2)


def test_open_buckets_are_replaced_by_the_next_pull_not_added() -> None:
    with ProviderApi(page_size=50) as api, DuckDBStore(":memory:") as store:
        _anthropic(api)
        # While open, the last bucket is cut at "now" (a different bucket id than its final).
        api.buckets[A_USAGE][-1]["ending_at"] = "2025-08-02T05:30:00Z"
        _pull(store, api, costs=False)
        assert _totals(store)[0] == 60
        # Later, the open buckets have settled at three times their early numbers.
        _anthropic(api, scale_open=3)
        later = NOW + timedelta(hours=3)
        summary = _pull(store, api, since=None, clock=lambda: later, costs=False)
        rows = store.connection.execute(
            "SELECT count(*), sum(output_tokens) FROM usage WHERE ts >= '2025-08-02 04:00'"
        ).fetchall()[0]
        remaining = store.connection.execute(
            "SELECT count(*) FROM tokenplan_pull_partials"
        ).fetchall()[0][0]
    assert rows == (4, 3 * (50 * 5 + 5) + 3 * (50 * 6 + 5))
    assert summary.replaced == 4
    assert summary.open_buckets == 0
    assert remaining == 0


def test_a_refused_key_is_named_but_never_shown() -> None:
    with ProviderApi() as api, DuckDBStore(":memory:") as store:
        # A reply that echoes the key back must not carry it into the message.
        api.fail(A_USAGE, Reply(401, f'{{"error": {{"message": "invalid x-api-key {KEY}"}}}}'))
        with pytest.raises(ProviderError) as err:
            _pull(store, api)
    assert "HTTP 401" in str(err.value)
    assert "admin key" in str(err.value)
    assert KEY not in str(err.value)
    assert "***" in str(err.value)


def test_the_admin_key_comes_from_the_environment() -> None:
    assert admin_key(ANTHROPIC, {"ANTHROPIC_ADMIN_KEY": " k "}) == "k"
    with pytest.raises(InvalidInput, match="OPENAI_ADMIN_KEY is not set"):
        admin_key(OPENAI, {})


def test_a_first_pull_needs_since() -> None:
    with (
        DuckDBStore(":memory:") as store,
        httpx.Client() as client,
        pytest.raises(InvalidInput, match="give --since"),
    ):
        pull(store, ANTHROPIC, client, key="k", clock=lambda: NOW)


def test_a_malformed_page_names_page_bucket_and_field() -> None:
    with ProviderApi() as api, DuckDBStore(":memory:") as store:
        bucket = anthropic_usage_bucket(T0, T0 + timedelta(hours=1))
        bucket["results"][1]["output_tokens"] = -4
        api.buckets[A_USAGE] = [bucket]
        with pytest.raises(InvalidInput, match=r"page 1\), bucket 1, result 2, field 'output"):
            _pull(store, api, costs=False)
        assert _totals(store)[0] == 0


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**32))
def test_backoff_never_exceeds_its_cap(failures: int, seed: int) -> None:
    retry = Retry(base_s=0.25, cap_s=10.0)
    wait = retry.backoff(failures, random.Random(seed))
    assert 0.0 <= wait <= min(10.0, 0.25 * 2 ** (failures - 1))
