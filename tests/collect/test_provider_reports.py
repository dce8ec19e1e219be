"""Anthropic and OpenAI usage reports: hand-checked totals, pages, batch rows, bad files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tokenplan.collect import import_file
from tokenplan.errors import InvalidInput
from tokenplan.pricing import PriceBook
from tokenplan.store import DuckDBStore

PROVIDER = Path(__file__).resolve().parents[1] / "data" / "provider"
ANTHROPIC = PROVIDER / "anthropic_usage.json"
OPENAI = PROVIDER / "openai_usage.json"


def _totals(store: DuckDBStore) -> tuple[object, ...]:
    return store.connection.execute(
        "SELECT count(*), sum(requests), sum(input_tokens), sum(output_tokens), "
        "sum(cache_read_tokens), sum(cache_write_tokens), count(DISTINCT request_id) FROM usage"
    ).fetchall()[0]


def test_anthropic_report_totals_by_hand() -> None:
    # input = uncached + cache read + 5m + 1h creation, per result:
    # 600,000 + 800,000 + 630,000 + 1,500,000 + 26,000 + 600,000 = 4,156,000
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, ANTHROPIC)
        assert summary.format == "anthropic_usage"
        # No request counts in this report: requests stay unknown.
        assert _totals(store) == (6, None, 4_156_000, 273_000, 982_000, 51_000, 6)
        rows = store.connection.execute("SELECT DISTINCT provider, bucket_s FROM usage").fetchall()
        teams = store.connection.execute(
            "SELECT team, key_id, sum(input_tokens) FROM usage GROUP BY ALL ORDER BY 3"
        ).fetchall()
    assert rows == [("anthropic", 86400)]
    assert teams == [
        ("wrkspc_01KxPp4gYtHc2ZqLm8VnRsTu", "apikey_01CzT5hJ2eGf9sWbY3kLmNoP", 26_000),
        (None, "apikey_01Bq8Lz4xWm1vDkRt7YcNpQs", 1_400_000),
        ("wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ", "apikey_01Rj2N8SVvo6BePZj99NhmiT", 2_730_000),
    ]
    assert summary.total_tokens == 4_429_000
    assert any("service_tier=batch" in n for n in summary.notes)
    assert any("long-context" in n for n in summary.notes)


def test_openai_report_totals_by_hand() -> None:
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, OPENAI)
        assert summary.format == "openai_usage"
        # input_tokens already include the cached ones: 9,100,000 in, 2,300,000 of them cached.
        assert _totals(store) == (4, 4_450, 9_100_000, 1_235_000, 2_300_000, 0, 4)
        teams = store.connection.execute(
            "SELECT team, sum(requests) FROM usage GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert teams == [("proj_abc123", 4_050), ("proj_xyz789", 400)]
    assert any("batch=true" in n for n in summary.notes)


@pytest.mark.parametrize("path", [ANTHROPIC, OPENAI])
def test_reports_reimport_idempotently(path: Path) -> None:
    with DuckDBStore(":memory:") as store:
        first = import_file(store, path)
        before = _totals(store)
        second = import_file(store, path)
        assert _totals(store) == before
    assert (second.inserted, second.duplicates) == (0, first.rows_read)


def test_overlapping_pages_are_stored_once(tmp_path: Path) -> None:
    pages = json.loads("[" + ANTHROPIC.read_text().replace("}\n{", "},\n{") + "]")
    first, second = tmp_path / "p1.json", tmp_path / "both.json"
    first.write_text(json.dumps(pages[0]))
    second.write_text(json.dumps(pages))  # a JSON array of pages, overlapping the first file
    with DuckDBStore(":memory:") as store:
        assert import_file(store, first).inserted == 4
        again = import_file(store, second)
        assert (again.inserted, again.duplicates) == (2, 4)
        assert _totals(store)[2] == 4_156_000


def test_unfinished_pagination_is_noted(tmp_path: Path) -> None:
    page = ANTHROPIC.read_text().split("\n}\n{")[0] + "\n}\n"
    path = tmp_path / "page1.json"
    path.write_text(page)
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, path)
    assert any("has_more=true" in n for n in summary.notes)


def test_batch_rows_are_priced_at_batch_rates() -> None:
    with DuckDBStore(":memory:") as store:
        plain = import_file(store, OPENAI, prices=PriceBook())
    with DuckDBStore(":memory:") as store:
        halved = import_file(store, OPENAI, prices=PriceBook(batch_multiplier=Decimal("0.5")))
        batch_cost = store.connection.execute(
            "SELECT cost_usd FROM usage WHERE request_id LIKE '%:true'"
        ).fetchall()
    assert "gpt-4o-mini-2024-07-18" in plain.unpriced_models  # no batch price: not costed as 0
    assert halved.unpriced_models == ()
    assert batch_cost[0][0] is not None
    assert batch_cost[0][0] > 0
    assert halved.cost_usd is not None
    assert plain.cost_usd is not None
    assert halved.cost_usd > plain.cost_usd


def test_truncated_report(tmp_path: Path) -> None:
    text = OPENAI.read_text()
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert str(err.value).startswith(f"{path}, line ")
    assert "ends early" in str(err.value)


def test_bad_value_is_named_by_its_place(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(OPENAI.read_text().replace('"output_tokens": 140000', '"output_tokens": -1'))
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert str(err.value).startswith(
        f"{path}, line 2 (page 1), bucket 2, result 1, field 'output_tokens': -1 is negative"
    )


def test_cached_more_than_input_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    text = OPENAI.read_text()
    path.write_text(
        text.replace('"input_cached_tokens": 100000,', '"input_cached_tokens": 400000,')
    )
    with (
        DuckDBStore(":memory:") as store,
        pytest.raises(InvalidInput, match=r"line 65 \(page 2\), bucket 1, result 1"),
    ):
        import_file(store, path)


@pytest.mark.parametrize("name", ["anthropic_usage.json", "openai_usage.json"])
def test_half_a_surrogate_pair_in_a_report_is_refused_with_its_place(
    tmp_path: Path, name: str
) -> None:
    text = (PROVIDER / name).read_text()
    model = text.index('"model": "') + len('"model": "')
    path = tmp_path / name
    # "\ud800" alone: half of a pair, as a damaged export can leave it.
    path.write_text(text[:model] + "x\\ud800" + text[model:])
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    message = str(err.value)
    assert message.startswith(f"{path}, line ")
    assert "bucket 1, result 1, field 'model': holds a lone UTF-16 surrogate" in message


def test_half_a_surrogate_pair_in_a_bucket_field_is_refused_with_its_place(tmp_path: Path) -> None:
    text = (PROVIDER / "anthropic_usage.json").read_text()
    start = text.index('"starting_at": "') + len('"starting_at": "')
    path = tmp_path / "anthropic_usage.json"
    path.write_text(text[:start] + "\\ud800" + text[start:])
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert "bucket 1, field 'starting_at': holds a lone UTF-16 surrogate" in str(err.value)


def test_a_bucket_still_open_when_the_file_was_exported_is_marked_open() -> None:
    """Exported at 15:00 on 3 Aug, the daily 3 Aug bucket holds 15 hours: the plan must
    forecast it, not read it as a whole day, until a later export of it is imported."""
    midday = datetime(2025, 8, 3, 15, tzinfo=UTC)
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, OPENAI, clock=lambda: midday)
        assert store.open_since() == datetime(2025, 8, 3)
        assert any("2025-08-03T00:00:00Z on end after now" in n for n in summary.notes)
        before = import_file(store, OPENAI, clock=lambda: midday - timedelta(days=3))
        # A file dated after the import holds no bucket under way: misdated, not open.
        assert store.open_since() is None
        assert not any("end after now" in n for n in before.notes)
        assert any("WARNING: 4 rows are dated after now" in n for n in before.notes)
        assert not any("dated after now" in n for n in summary.notes)
        later = import_file(store, OPENAI, clock=lambda: midday + timedelta(days=2))
        assert store.open_since() is None
        assert not any("end after now" in n for n in later.notes)
        # Marks of one export kind are replaced only over the file's own span.
        store.connection.execute(
            "INSERT INTO tokenplan_pull_partials VALUES ('openai', 'usage', 'x', '2025-09-01')"
        )
        import_file(store, OPENAI, clock=lambda: midday + timedelta(days=2))
        assert store.open_since() == datetime(2025, 9, 1)


def test_a_report_over_the_sdks_calls_of_the_same_days_warns_they_count_twice() -> None:
    from tokenplan.events import UsageEvent, events_to_table

    with DuckDBStore(":memory:") as store:
        call = UsageEvent(
            ts=datetime(2025, 8, 1, 10, tzinfo=UTC),
            provider="openai",
            model="gpt-4o-2024-08-06",
            input_tokens=10,
            output_tokens=1,
            request_id="sdk-1",
        )
        store.write(events_to_table([call]))
        summary = import_file(store, OPENAI)
    [warning] = [n for n in summary.notes if "stored both as calls" in n]
    assert warning.startswith("WARNING: 1 day(s) of 1 model(s) (gpt-4o-2024-08-06 first)")
