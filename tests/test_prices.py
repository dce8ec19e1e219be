"""Prices: hand-computed costs, tiers per request, history, overrides, FX, bulk row pricing."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import genai_prices
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenplan.pricing as prices_api
from tokenplan.errors import ConfigError, PriceError
from tokenplan.events import USAGE_SCHEMA
from tokenplan.pricing import FxRate, PriceBook, round_usd

AT = datetime(2025, 10, 1, 12, tzinfo=UTC)
EXAMPLE = Path(prices_api.__file__).parents[1] / "data" / "prices.example.toml"


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")
    return path


def genai_cost(model: str, provider: str | None, at: datetime, **usage: int) -> Decimal:
    return genai_prices.calc_price(
        genai_prices.Usage(**usage), model, provider_id=provider, genai_request_timestamp=at
    ).total_price


# -- hand-computed costs -----------------------------------------------------------------


def test_sonnet_4_5_with_cache_reads_and_writes(book: PriceBook) -> None:
    # $3 input, $0.30 cache read, $3.75 cache write (5m), $15 output per MTok
    # 2,000 uncached x 3 + 6,000 x 0.3 + 2,000 x 3.75 + 1,000 x 15 = 30,300 $/MTok-units
    cost = book.cost("anthropic", "claude-sonnet-4-5", AT, 10_000, 1_000, 6_000, 2_000)
    assert cost == Decimal("0.0303")
    rates = book.rates("anthropic", "claude-sonnet-4-5", AT)
    assert rates is not None
    assert rates.per_mtok()["cache_write_1h"] == Decimal(6)
    assert rates.source == f"genai-prices {genai_prices.__version__} (anthropic/claude-sonnet-4-5)"


def test_context_tier_applies_per_request(book: PriceBook) -> None:
    one_call = book.cost("anthropic", "claude-sonnet-4-5", AT, 1_000_000, 0)
    ten_calls = book.cost("anthropic", "claude-sonnet-4-5", AT, 1_000_000, 0, requests=10)
    assert one_call == Decimal(6)  # all tokens at the >200k rate, $6/MTok
    assert ten_calls == Decimal(3)  # ten 100k requests stay at $3/MTok
    single = book.cost("anthropic", "claude-sonnet-4-5", AT, 100_000, 0)
    assert single is not None
    assert ten_calls == 10 * single
    assert one_call == genai_cost("claude-sonnet-4-5", "anthropic", AT, input_tokens=1_000_000)


def test_tier_threshold_is_exclusive(book: PriceBook) -> None:
    at_edge = book.cost("anthropic", "claude-sonnet-4-5", AT, 200_000, 100)
    above = book.cost("anthropic", "claude-sonnet-4-5", AT, 200_001, 100)
    assert at_edge == Decimal("0.6015")  # 200k x $3 + 100 x $15
    assert above == Decimal("1.202256")  # 200,001 x $6 + 100 x $22.50


def test_gpt_4o_cached_input_is_part_of_input_tokens(book: PriceBook) -> None:
    # 600 uncached x 2.5 + 400 cached x 1.25 + 100 output x 10 per MTok
    cost = book.cost("openai", "gpt-4o", AT, 1_000, 100, cache_read_tokens=400)
    assert cost == Decimal("0.003")
    ref = genai_cost(
        "gpt-4o", "openai", AT, input_tokens=1000, output_tokens=100, cache_read_tokens=400
    )
    assert cost == ref


def test_price_history_by_date(book: PriceBook) -> None:
    before = book.rates("openai", "o3", datetime(2025, 6, 9, 23, 59, tzinfo=UTC))
    after = book.rates("openai", "o3", datetime(2025, 6, 10, tzinfo=UTC))
    assert before is not None
    assert after is not None
    assert before.per_mtok()["input"] == Decimal(10)
    assert after.per_mtok()["input"] == Decimal(2)
    assert after.valid_from == date(2025, 6, 10)
    assert book.cost("openai", "o3", date(2025, 6, 1), 1_000, 1_000) == Decimal("0.05")


def test_time_of_day_prices(book: PriceBook) -> None:
    peak = book.rates("deepseek", "deepseek-chat", datetime(2025, 9, 1, 1, tzinfo=UTC))
    off = book.rates("deepseek", "deepseek-chat", datetime(2025, 9, 1, 17, tzinfo=UTC))
    assert peak is not None
    assert off is not None
    assert peak.per_mtok()["input"] == Decimal("0.27")
    assert off.per_mtok()["input"] == Decimal("0.135")


def test_per_request_fee_matches_genai_prices(book: PriceBook) -> None:
    cost = book.cost("perplexity", "sonar", AT, 1_000, 500)
    assert cost == genai_cost("sonar", "perplexity", AT, input_tokens=1000, output_tokens=500)


def test_unknown_model_is_none_never_zero(book: PriceBook) -> None:
    assert book.rates(None, "no-such-model-xyz", AT) is None
    assert book.cost(None, "no-such-model-xyz", AT, 10, 10) is None


def test_unknown_provider_falls_back_to_list_price_with_a_note(book: PriceBook) -> None:
    rates = book.rates("somerelay", "gpt-4o", AT)
    assert rates is not None
    assert rates.provider == "openai"
    assert rates.note is not None
    assert "somerelay" in rates.note


@pytest.mark.parametrize(
    ("provider", "name", "vendor", "model"),
    [
        (None, "openai/gpt-4o-mini", "openai", "gpt-4o-mini"),  # LiteLLM
        ("somerelay", "anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        (None, "gemini/gemini-2.5-pro", "google", "gemini-2.5-pro"),  # LiteLLM's Google prefix
    ],
)
def test_a_vendor_model_name_is_priced_as_that_vendors_model(
    book: PriceBook, provider: str | None, name: str, vendor: str, model: str
) -> None:
    prefixed = book.rates(provider, name, AT)
    plain = book.rates(vendor, model, AT)
    assert prefixed is not None
    assert plain is not None
    assert (prefixed.provider, prefixed.base, prefixed.tiers) == (
        plain.provider,
        plain.base,
        plain.tiers,
    )
    assert prefixed.note is not None
    assert "vendor/model name" in prefixed.note
    assert book.cost(provider, name, AT, 1000, 100) == book.cost(vendor, model, AT, 1000, 100)


def test_a_slash_alone_does_not_make_a_price(book: PriceBook) -> None:
    for name in ("a/b/c", "openai/", "/gpt-4o", "no-vendor/no-such-model-xyz"):
        assert book.rates(None, name, AT) is None


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-1"),
        ("anthropic", "claude-3-5-haiku-latest"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1"),
        ("google", "gemini-2.5-pro"),
        ("deepseek", "deepseek-chat"),
        ("mistral", "mistral-large-latest"),
    ],
)
@settings(max_examples=25, deadline=None)
@given(
    inp=st.integers(0, 2_000_000),
    read_share=st.fractions(0, 1),
    write_share=st.fractions(0, 1),
    out=st.integers(0, 100_000),
    hour=st.integers(0, 23),
)
def test_agrees_with_genai_prices(
    book: PriceBook,
    provider: str,
    model: str,
    inp: int,
    read_share: Fraction,
    write_share: Fraction,
    out: int,
    hour: int,
) -> None:
    read = int(inp * read_share)
    write = int((inp - read) * write_share)
    at = datetime(2025, 9, 1, hour, tzinfo=UTC)
    ours = book.cost(provider, model, at, inp, out, read, write)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = genai_cost(
            model,
            provider,
            at,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
    assert ours == ref


# -- batch ---------------------------------------------------------------------------------


def test_batch_uses_genai_variant_where_dated_and_none_before(book: PriceBook) -> None:
    later = datetime(2026, 11, 1, tzinfo=UTC)
    rates = book.rates("anthropic", "claude-sonnet-4-5", later, batch=True)
    assert rates is not None
    assert rates.batch
    assert rates.per_mtok()["input"] == Decimal("1.5")
    # genai-prices dates its batch prices from 2026-10-14; earlier is unknown unless configured.
    assert book.rates("anthropic", "claude-sonnet-4-5", AT, batch=True) is None
    halved = PriceBook(batch_multiplier=Decimal("0.5"))
    cost = halved.cost("anthropic", "claude-sonnet-4-5", AT, 100_000, 1_000, batch=True)
    assert cost == Decimal("0.1575")  # (100k x 3 + 1k x 15) / 2 per MTok


# -- overrides -----------------------------------------------------------------------------


def test_overrides_win_and_provider_specific_beats_generic(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[prices]]
model = "gpt-4o"
input = 2
output = 8
[[prices]]
model = "gpt-4o"
provider = "azure"
input = "2.2"
output = "8.8"
cache_read = "1.1"
""",
    )
    book = PriceBook(path)
    assert book.cost("openai", "gpt-4o", AT, 1_000_000, 0) == Decimal(2)
    # 500k uncached x 2.2 + 500k cached x 1.1 + 1M output x 8.8, per MTok
    assert book.cost("azure", "gpt-4o", AT, 1_000_000, 1_000_000, 500_000) == Decimal("10.45")
    rates = book.rates("openai", "GPT-4o", AT)
    assert rates is not None
    assert rates.source == f"override {path}"
    # unpriced cache reads pay the input rate, as in genai-prices
    assert rates.cache_read == rates.input


def test_override_valid_from_keeps_list_price_before(tmp_path: Path) -> None:
    book = PriceBook.load(EXAMPLE)
    before = book.cost("anthropic", "claude-opus-4-1", date(2025, 8, 31), 1_000_000, 0)
    after = book.cost("anthropic", "claude-opus-4-1", date(2025, 9, 1), 1_000_000, 0)
    assert before == Decimal(15)  # list
    assert after == Decimal(24)  # contract >200k tier: 1M tokens in one request


def test_override_tiers_and_batch(tmp_path: Path) -> None:
    book = PriceBook.load(EXAMPLE)
    at = date(2025, 10, 1)
    assert book.cost("anthropic", "claude-opus-4-1", at, 100_000, 0, batch=True) == Decimal("0.6")
    assert book.cost(None, "llama-3.1-70b-internal", at, 500_000, 500_000) == Decimal("0.2")


def test_relay_in_cny_at_one_to_one_and_at_list(tmp_path: Path) -> None:
    book = PriceBook.load(EXAMPLE)
    at = date(2025, 10, 1)
    one_to_one = book.cost("myrelay", "claude-sonnet-4-5", at, 100_000, 10_000)
    at_list = book.cost("relay73", "claude-sonnet-4-5", at, 100_000, 10_000)
    listed = book.cost("anthropic", "claude-sonnet-4-5", at, 100_000, 10_000)
    assert listed == Decimal("0.45")
    assert at_list == Decimal("0.45")
    assert one_to_one == round_usd(Decimal("0.45") / Decimal("7.3"))
    assert one_to_one == Decimal("0.061643835616")
    rates = book.rates("myrelay", "claude-sonnet-4-5", at)
    assert rates is not None
    assert (rates.currency, rates.per_usd) == ("CNY", Decimal("7.3"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[prices]\nmodel=1", "not valid TOML"),
        ('colour = "red"', "key 'colour'"),
        ('[[prices]]\nmodel = "m"\ninput = -1\noutput = 1', "key 'prices[0] (model 'm').input'"),
        ('[[prices]]\nmodel = "m"\ninput = 1', "'output'"),
        (
            '[[prices]]\nmodel = "m"\ninput = 1\noutput = 1\nspeed = 2',
            "prices[0] (model 'm'): unknown key 'speed'",
        ),
        ("[[prices]]\ninput = 1\noutput = 1", "'prices[0].model'"),
        ('[[prices]]\nmodel = "m"\nmultiplier = 2\ninput = 1', "not both"),
        ('[[prices]]\nmodel = "m"', "no price given"),
        ('[[prices]]\nmodel = "m"\ninput = 1\noutput = 1\ncurrency = "CNY"', "no exchange rate"),
        ('[[prices]]\nmodel = "m"\ninput = 1\noutput = 1\nvalid_from = "soon"', "valid_from"),
        ('[fx]\ncurrency = "CNY"\nper_usd = 0', "fx.per_usd"),
        ('batch_multiplier = "half"', "batch_multiplier"),
        (
            '[[prices]]\nmodel = "m"\ninput = 1\noutput = 1\n[[prices.tiers]]\nabove = -5\n'
            "input = 2\noutput = 2",
            "above",
        ),
    ],
)
def test_bad_overrides_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        PriceBook(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_missing_overrides_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        PriceBook(tmp_path / "nope.toml")


# -- FX ------------------------------------------------------------------------------------


def test_convert_is_exact() -> None:
    book = PriceBook(fx=FxRate(currency="CNY", per_usd=Decimal("7.3")))
    assert book.convert(Decimal("1.5")) == Decimal("10.95")
    assert book.convert(Decimal("0.000000000001")) == Decimal("0.0000000000073")
    with pytest.raises(PriceError, match="no exchange rate"):
        PriceBook().convert(Decimal(1))


def test_fx_refuses_floats_and_non_positive_rates() -> None:
    with pytest.raises(TypeError):
        FxRate(currency="CNY", per_usd=7.3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="> 0"):
        FxRate(currency="CNY", per_usd=Decimal(0))
    assert FxRate(currency="cny", per_usd="7.3").currency == "CNY"  # type: ignore[arg-type]


money = st.decimals(min_value=0, max_value=10**12, places=12, allow_nan=False, allow_infinity=False)
rates_st = st.decimals(min_value="0.01", max_value=1000, places=4, allow_nan=False)


@given(usd=money, per_usd=rates_st)
def test_fx_round_trip_exact_to_1e12(usd: Decimal, per_usd: Decimal) -> None:
    fx = FxRate(currency="CNY", per_usd=per_usd)
    assert fx.to_usd(fx.from_usd(usd)) == usd


# -- money properties ----------------------------------------------------------------------


token_counts = st.integers(0, 150_000)


@given(
    calls=st.lists(
        st.tuples(token_counts, st.integers(0, 20_000), st.fractions(0, 1), st.fractions(0, 1)),
        min_size=1,
        max_size=8,
    )
)
def test_cost_is_additive_over_requests_below_the_tier(
    book: PriceBook, calls: list[tuple[int, int, Fraction, Fraction]]
) -> None:
    parts = []
    for inp, out, rs, ws in calls:
        read = int(inp * rs)
        write = int((inp - read) * ws)
        parts.append((inp, out, read, write))
    each = [book.cost("anthropic", "claude-sonnet-4-5", AT, *p) for p in parts]
    total = book.cost(
        "anthropic",
        "claude-sonnet-4-5",
        AT,
        *(sum(p[i] for p in parts) for i in range(4)),
        requests=len(parts),
    )
    assert total == sum(c for c in each if c is not None)
    assert all(c is not None and c >= 0 for c in each)


@given(inp=st.integers(0, 10**9), out=st.integers(0, 10**9), rs=st.fractions(0, 1))
def test_cost_is_exact_and_never_negative(
    book: PriceBook, inp: int, out: int, rs: Fraction
) -> None:
    read = int(inp * rs)
    cost = book.cost("openai", "gpt-4o-mini", AT, inp, out, read)
    expected = (
        Fraction(inp - read) * Fraction("0.15") + read * Fraction("0.075") + out * Fraction("0.6")
    ) / 10**6
    assert cost is not None
    assert Fraction(cost) == expected
    assert cost >= 0


def test_cost_rejects_impossible_usage(book: PriceBook) -> None:
    with pytest.raises(ValueError, match="exceed"):
        book.cost("openai", "gpt-4o", AT, 10, 0, cache_read_tokens=11)
    with pytest.raises(ValueError, match=">= 0"):
        book.cost("openai", "gpt-4o", AT, -1, 0)


# -- bulk pricing ----------------------------------------------------------------------------


def rows(records: list[dict[str, object]]) -> pa.Table:
    base: dict[str, object] = {
        "bucket_s": 0,
        "requests": 1,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }
    full = [{**base, **r} for r in records]
    return pa.Table.from_pylist(full, schema=USAGE_SCHEMA)


def ts(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 9, day, hour)


def test_price_rows_equals_row_by_row_cost() -> None:
    book = PriceBook.load(EXAMPLE)
    table = rows(
        [
            {
                "ts": ts(1),
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "input_tokens": 10_000,
                "output_tokens": 1_000,
                "cache_read_tokens": 6_000,
                "cache_write_tokens": 2_000,
            },
            {
                "ts": ts(1),
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "input_tokens": 1_000_000,
                "output_tokens": 0,
            },
            {
                "ts": ts(1),
                "bucket_s": 3600,
                "requests": 10,
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "input_tokens": 1_000_000,
                "output_tokens": 0,
            },
            {
                "ts": ts(2),
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": 1_000,
                "output_tokens": 100,
                "cache_read_tokens": 400,
            },
            {
                "ts": ts(3, 1),
                "provider": "deepseek",
                "model": "deepseek-chat",
                "input_tokens": 1_000_000,
                "output_tokens": 1_000_000,
            },
            {
                "ts": ts(3, 17),
                "provider": "deepseek",
                "model": "deepseek-chat",
                "input_tokens": 1_000_000,
                "output_tokens": 1_000_000,
            },
            {
                "ts": datetime(2025, 6, 9),
                "provider": "openai",
                "model": "o3",
                "input_tokens": 1_000,
                "output_tokens": 1_000,
            },
            {
                "ts": datetime(2025, 6, 10),
                "provider": "openai",
                "model": "o3",
                "input_tokens": 1_000,
                "output_tokens": 1_000,
            },
            {
                "ts": ts(4),
                "provider": "myrelay",
                "model": "claude-sonnet-4-5",
                "input_tokens": 100_000,
                "output_tokens": 10_000,
            },
            {
                "ts": ts(4),
                "provider": "anthropic",
                "model": "claude-opus-4-1",
                "input_tokens": 300_000,
                "output_tokens": 10,
            },
            {
                "ts": ts(4),
                "provider": "perplexity",
                "model": "sonar",
                "input_tokens": 1_000,
                "output_tokens": 500,
            },
            {
                "ts": ts(5),
                "provider": "acme",
                "model": "mystery-1",
                "input_tokens": 5,
                "output_tokens": 5,
            },
            {
                "ts": ts(5),
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": None,
                "output_tokens": None,
            },
            {
                "ts": ts(5),
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": 5,
                "output_tokens": 5,
                "cost_usd": Decimal("9.99"),
            },
            # so many tokens that the int64 fast path must hand the row to exact Decimal
            {
                "ts": ts(6),
                "bucket_s": 86400,
                "requests": 10**9,
                "provider": "anthropic",
                "model": "claude-opus-4-1",
                "input_tokens": 10**14,
                "output_tokens": 10**13,
            },
        ]
    )
    result = book.price_rows(table)
    got = result.table.column("cost_usd").to_pylist()
    for record, cost in zip(table.to_pylist(), got, strict=True):
        if record["cost_usd"] is not None:
            assert cost == record["cost_usd"]
            continue
        if record["input_tokens"] is None:
            assert cost is None
            continue
        expected = book.cost(
            record["provider"],
            record["model"],
            record["ts"],
            record["input_tokens"],
            record["output_tokens"],
            record["cache_read_tokens"],
            record["cache_write_tokens"],
            requests=record["requests"],
        )
        assert cost == (None if expected is None else round_usd(expected)), record
    assert got[1] == Decimal(6)
    assert got[2] == Decimal(3)
    assert result.unpriced_models == {"mystery-1"}
    assert any("average request" in n for n in result.notes)
    assert any("no input or output token count" in n for n in result.notes)
    assert result.table.schema == USAGE_SCHEMA


def test_price_rows_bucket_without_request_count_uses_base_tier_and_says_so(
    book: PriceBook,
) -> None:
    table = rows(
        [
            {
                "ts": ts(1),
                "bucket_s": 3600,
                "requests": None,
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "input_tokens": 1_000_000,
                "output_tokens": 0,
            }
        ]
    )
    result = book.price_rows(table)
    assert result.table.column("cost_usd").to_pylist() == [Decimal(3)]
    assert any("base context tier" in n for n in result.notes)


def test_price_rows_batch(book: PriceBook) -> None:
    table = rows(
        [
            {
                "ts": datetime(2026, 11, 2),
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": 1_000_000,
                "output_tokens": 0,
            }
        ]
    )
    assert book.price_rows(table, batch=True).table.column("cost_usd").to_pylist() == [
        Decimal("1.25")
    ]


def test_price_rows_empty_and_already_priced(book: PriceBook) -> None:
    empty = USAGE_SCHEMA.empty_table()
    assert book.price_rows(empty).table.num_rows == 0
    table = rows(
        [
            {
                "ts": ts(1),
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": 1,
                "output_tokens": 1,
                "cost_usd": Decimal(1),
            }
        ]
    )
    assert book.price_rows(table).table.equals(table)


def test_public_names() -> None:
    for name in prices_api.__all__:
        assert hasattr(prices_api, name)
    assert {"PriceBook", "Rates", "FxRate", "PricedRows"} <= set(prices_api.__all__)


MODELS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-4o"),
    ("deepseek", "deepseek-chat"),
    ("perplexity", "sonar"),
    ("myrelay", "claude-sonnet-4-5"),
    ("acme", "mystery-1"),
]


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from(MODELS),
            st.datetimes(datetime(2025, 1, 1), datetime(2026, 12, 31)),
            st.integers(0, 3_000_000),
            st.integers(0, 50_000),
            st.fractions(0, 1),
            st.sampled_from([None, 1, 3, 40]),
            st.sampled_from([0, 3600]),
        ),
        min_size=1,
        max_size=30,
    ),
    chunk=st.integers(1, 7),
)
def test_price_rows_matches_cost_on_random_tables(
    data: list[tuple[tuple[str, str], datetime, int, int, Fraction, int | None, int]], chunk: int
) -> None:
    book = PriceBook.load(EXAMPLE)
    records: list[dict[str, Any]] = []
    for (provider, model), when, inp, out, share, requests, bucket in data:
        read = int(inp * share)
        records.append(
            {
                "ts": when,
                "bucket_s": bucket,
                "requests": requests if bucket else 1,
                "provider": provider,
                "model": model,
                "input_tokens": inp,
                "output_tokens": out,
                "cache_read_tokens": read,
            }
        )
    table = rows(records)
    got = book.price_rows(table, chunk_rows=chunk).table.column("cost_usd").to_pylist()
    for record, cost in zip(records, got, strict=True):
        rates = book.rates(record["provider"], record["model"], record["ts"])
        requests = record["requests"]
        fee = any(t.request for t in (rates.base, *(t for _, t in rates.tiers))) if rates else 0
        # unknown price, or a per-request fee on a bucket that does not say how many requests
        if rates is None or (requests is None and fee):
            assert cost is None
            continue
        inp = record["input_tokens"]
        tier = rates.base if requests is None else rates.tier_for(inp, requests)
        amount = tier.amount(
            record["input_tokens"],
            record["output_tokens"],
            record["cache_read_tokens"],
            0,
            requests or 0,
        )
        assert cost == round_usd(rates.to_usd(amount))
        assert cost >= 0
