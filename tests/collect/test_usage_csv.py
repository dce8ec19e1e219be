"""The usage series CSV: metrics, unknowns, total_tokens, dimensions, bucket ids, detection."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tokenplan.collect import detect_format, import_file
from tokenplan.collect.detect import Source
from tokenplan.errors import InvalidInput
from tokenplan.store import DuckDBStore

DATA = Path(__file__).resolve().parents[1] / "data"


def _csv(tmp_path: Path, text: str, name: str = "u.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(store: DuckDBStore, cols: str) -> list[tuple[object, ...]]:
    return store.connection.execute(f"SELECT {cols} FROM usage ORDER BY ts, model").fetchall()


def test_metrics_dimensions_and_cost(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "timestamp,model,team,feature,requests,input_tokens,output_tokens,cost_usd,failed_requests,x\n"
        "2025-01-01T00:00:00Z,claude-sonnet-4-5,search,qa,10,1000,100,0.0123,1,junk\n"
        "2025-01-01T01:00:00Z,claude-sonnet-4-5,search,qa,,2000,,,,junk\n",
    )
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, path)
        rows = _rows(store, "bucket_s, team, feature, requests, input_tokens, output_tokens, "
                     "cost_usd, failed_requests")  # fmt: skip
    assert rows == [
        (3600, "search", "qa", 10, 1000, 100, Decimal("0.0123"), 1),
        (3600, "search", "qa", None, 2000, None, None, None),
    ]
    gap = (
        "empty: unknown, not 0; a forecast reads a wider bucket (a day, a week) holding one as"
        " unknown too"
    )
    assert summary.notes == (
        "ignored columns: x",
        f"1 row leaves requests {gap}",
        f"1 row leaves failed_requests {gap}",
        f"1 row leaves output_tokens {gap}",
    )


def test_total_tokens_completes_a_missing_part(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "timestamp,model,input_tokens,output_tokens,total_tokens\n"
        "2025-01-01T00:00:00Z,m,100,,150\n"
        "2025-01-01T01:00:00Z,m,,30,100\n"
        "2025-01-01T02:00:00Z,m,5,6,11\n"
        "2025-01-01T03:00:00Z,m,,,999\n",
    )
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, path)
        rows = _rows(store, "input_tokens, output_tokens, unsplit_tokens")
        totals = store.series("total_tokens", "1h", exact=True)
    # The total-only row has no honest split: its parts stay unknown, its total still counts.
    assert rows == [(100, 50, None), (70, 30, None), (5, 6, None), (None, None, 999)]
    assert list(totals.y) == [150, 100, 11, 999]
    assert summary.total_tokens == 150 + 100 + 11 + 999
    assert any("999 tokens" in n for n in summary.notes)


def test_a_file_with_only_total_tokens_can_be_forecast_on_totals(tmp_path: Path) -> None:
    lines = [f"2025-01-01T{h:02d}:00:00Z,m,{h * 10}" for h in range(24)]
    path = _csv(tmp_path, "timestamp,model,total_tokens\n" + "\n".join(lines) + "\n")
    with DuckDBStore(":memory:") as store:
        import_file(store, path)
        totals = store.series("total_tokens", "1h", exact=True)
        inputs = store.series("input_tokens", "1h")
    assert list(totals.y) == [h * 10 for h in range(24)]
    assert inputs.y.isna().all()


def test_total_tokens_must_add_up(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "timestamp,model,input_tokens,output_tokens,total_tokens\n"
        "2025-01-01T00:00:00Z,m,1,2,3\n"
        "2025-01-01T01:00:00Z,m,1,2,4\n",
    )
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert str(err.value).startswith(f"{path}, line 3, field 'total_tokens': 4 is not")


def test_zoneless_timestamps_are_utc_by_definition(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, "timestamp,model,requests\n2025-01-01 00:00:00,m,5\n2025-01-01 01:00,m,6\n"
    )
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, path)
        frame = store.series("requests", "1h", exact=True)
    assert [str(ts) for ts in frame.ds] == ["2025-01-01 00:00:00", "2025-01-01 01:00:00"]
    assert list(frame.y) == [5, 6]
    assert any("read as UTC" in note for note in summary.notes)


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ("2025-01-01T02:00:00Z,m,-5,1", "requests", "-5 is negative"),
        ("yesterday,m,5,1", "timestamp", "'yesterday' is not an ISO 8601 timestamp"),
        ("2025-01-01T02:00:00Z,,5,1", "model", "model is missing"),
        ("2025-01-01T02:00:00Z,m,5,1.5", "input_tokens", "'1.5' is not a whole number"),
    ],
)
def test_bad_rows(tmp_path: Path, row: str, field: str, words: str) -> None:
    head = "timestamp,model,requests,input_tokens\n"
    good = "2025-01-01T00:00:00Z,m,1,1\n2025-01-01T01:00:00Z,m,1,1\n2025-01-01T01:30:00Z,m,1,1\n"
    path = _csv(tmp_path, head + good + row + "\n")
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert str(err.value).startswith(f"{path}, line 5, field '{field}': ")
    assert words in str(err.value)


def test_ragged_row_is_named(tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp,model,requests\n2025-01-01T00:00:00Z,m,1\n2025-01-01,m\n")
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput, match=r"line 3: 2 fields"):
        import_file(store, path)


def test_repeated_bucket_keys_are_all_kept(tmp_path: Path) -> None:
    row = "2025-01-01T00:00:00Z,m,3\n"
    path = _csv(tmp_path, "timestamp,model,requests\n" + row * 3)
    with DuckDBStore(":memory:") as store:
        assert import_file(store, path).inserted == 3
        assert import_file(store, path).inserted == 0
        ids = [r[0] for r in _rows(store, "request_id")]
    assert sorted(ids) == [
        "bucket:usage_csv:2025-01-01T00:00:00.000000Z::m::::",
        "bucket:usage_csv:2025-01-01T00:00:00.000000Z::m::::#1",
        "bucket:usage_csv:2025-01-01T00:00:00.000000Z::m::::#2",
    ]


def test_overlapping_exports_are_stored_once(tmp_path: Path) -> None:
    head = "timestamp,model,requests\n"
    a = _csv(
        tmp_path, head + "".join(f"2025-01-01T0{h}:00:00Z,m,{h}\n" for h in range(0, 6)), "a.csv"
    )
    b = _csv(
        tmp_path, head + "".join(f"2025-01-01T0{h}:00:00Z,m,{h}\n" for h in range(3, 9)), "b.csv"
    )
    with DuckDBStore(":memory:") as store:
        import_file(store, a)
        second = import_file(store, b)
        total = store.connection.execute("SELECT sum(requests) FROM usage").fetchall()[0][0]
    assert (second.inserted, second.duplicates) == (3, 3)
    assert total == sum(range(9))


def test_no_model_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp,requests\n2025-01-01T00:00:00Z,4\n2025-01-02T00:00:00Z,5\n")
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, path)
        assert _rows(store, "model, bucket_s") == [("unknown", 86400)] * 2
    assert summary.models == ("unknown",)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("shared/nasa_http_1995_proxy/hourly.csv", "usage_csv"),
        ("shared/servegen_language/clients_10min.csv.gz", "usage_csv"),
        ("shared/azure_llm_2023/requests.csv.gz", "azure_trace"),
        ("shared/mooncake_conversation/requests.csv.gz", "mooncake_trace"),
        ("provider/anthropic_usage.json", "anthropic_usage"),
        ("provider/openai_usage.json", "openai_usage"),
    ],
)
def test_format_is_detected_from_content(name: str, fmt: str) -> None:
    assert detect_format(Source(DATA / name)) == fmt


def test_unknown_content_and_format(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b\n1,2\n")
    with DuckDBStore(":memory:") as store:
        with pytest.raises(InvalidInput, match="line 1: the header"):
            import_file(store, path)
        with pytest.raises(InvalidInput, match="unknown format 'xml'"):
            import_file(store, path, fmt="xml")
        with pytest.raises(InvalidInput, match="no such file"):
            import_file(store, tmp_path / "missing.csv")


def test_progress_callback_sees_every_byte(tmp_path: Path) -> None:
    path = DATA / "shared" / "servegen_language" / "clients_10min.csv.gz"
    seen: list[tuple[int, int]] = []
    with DuckDBStore(":memory:") as store:
        import_file(store, path, progress=lambda done, total: seen.append((done, total)))
    assert seen
    assert seen[-1][0] >= path.stat().st_size == seen[-1][1]
