"""Raw events as CSV, JSON lines and Parquet: parsing, positions of bad rows, atomicity."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenplan.collect import events_file, import_file
from tokenplan.errors import InvalidInput
from tokenplan.store import DuckDBStore

HEADER = (
    "ts,provider,model,input_tokens,output_tokens,cache_read_tokens,status,cost_usd,team,request_id"
)
GOOD = [
    "2025-03-01T10:00:00Z,anthropic,claude-sonnet-4-5,1000,200,400,ok,0.01,search,r1",
    "2025-03-01T10:00:30+01:00,openai,gpt-4o,500,50,0,error,,chat,r2",
    "2025-03-01T10:01:00.250Z,anthropic,claude-sonnet-4-5,300,0,,rate_limited,,,r3",
    '2025-03-01T11:00:00Z,anthropic,"claude-haiku-4-5",7,8,,,0.5,"a, b",r4',
]


def _write(tmp_path: Path, lines: list[str], name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _sums(store: DuckDBStore) -> tuple[object, ...]:
    return store.connection.execute(
        "SELECT count(*), sum(requests), sum(failed_requests), sum(rate_limited_requests), "
        "sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cost_usd) FROM usage"
    ).fetchall()[0]


def test_csv_events(tmp_path: Path) -> None:
    path = _write(tmp_path, [HEADER, *GOOD])
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, path)
        assert summary.format == "events_csv"
        assert _sums(store) == (4, 4, 2, 1, 1807, 258, 400, Decimal("0.51"))
        teams = store.connection.execute("SELECT team FROM usage ORDER BY request_id").fetchall()
        ts = store.connection.execute("SELECT ts FROM usage ORDER BY request_id").fetchall()
    assert [t[0] for t in teams] == ["search", "chat", None, "a, b"]
    assert ts[1][0] == datetime(2025, 3, 1, 9, 0, 30)  # +01:00 converted to UTC
    assert summary.start == datetime(2025, 3, 1, 9, 0, 30, tzinfo=UTC)
    assert summary.total_tokens == 2065


def test_same_events_as_jsonl_and_parquet(tmp_path: Path) -> None:
    csv_path = _write(tmp_path, [HEADER, *GOOD])
    with DuckDBStore(":memory:") as store:
        import_file(store, csv_path)
        table = store.connection.sql("SELECT * FROM usage ORDER BY request_id").to_arrow_table()
        expected = _sums(store)
    records = [
        {"ts": "2025-03-01T10:00:00Z", "model": "claude-sonnet-4-5", "provider": "anthropic",
         "input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 400, "cost_usd": 0.01,
         "team": "search", "request_id": "r1"},
        {"ts": "2025-03-01T10:00:30+01:00", "model": "gpt-4o", "provider": "openai",
         "input_tokens": 500, "output_tokens": 50, "status": "error", "team": "chat",
         "request_id": "r2"},
        {"ts": "2025-03-01T10:01:00.250Z", "model": "claude-sonnet-4-5", "provider": "anthropic",
         "input_tokens": 300, "output_tokens": 0, "status": "rate_limited", "request_id": "r3"},
        {"ts": "2025-03-01T11:00:00Z", "model": "claude-haiku-4-5", "provider": "anthropic",
         "input_tokens": 7, "output_tokens": 8, "cost_usd": "0.5", "team": "a, b",
         "request_id": "r4", "extra": {"ignored": True}},
    ]  # fmt: skip
    jsonl = tmp_path / "events.jsonl.gz"
    with gzip.open(jsonl, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in records) + "\n")
    parquet = tmp_path / "events.parquet"
    table = table.drop_columns(["source", "latency_ms_sum"])
    table = table.set_column(0, "ts", table.column("ts").cast(pa.timestamp("us", "UTC")))
    table = table.append_column("status", pa.array(["ok", "error", "rate_limited", "ok"]))
    pq.write_table(table, parquet)
    for path, fmt in ((jsonl, "events_jsonl"), (parquet, "events_parquet")):
        with DuckDBStore(":memory:") as store:
            assert import_file(store, path).format == fmt
            assert _sums(store) == expected


@pytest.mark.parametrize(
    "team",
    ["starting_at", "uncached_input_tokens", "organization.usage.completions.result",
     'x": 1, "starting_at": "', "num_model_requests"],
)  # fmt: skip
def test_a_value_named_like_a_report_key_leaves_events_as_events(tmp_path: Path, team: str) -> None:
    # Found by the property test: a team called "starting_at" made the file an Anthropic report.
    path = tmp_path / "events.jsonl"
    rows = [
        {
            "ts": "2025-03-01T10:00:00Z",
            "model": "m",
            "input_tokens": 5,
            "output_tokens": 1,
            "team": team,
        }
    ] * 3
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with DuckDBStore(":memory:") as store:
        assert import_file(store, path).format == "events_jsonl"
        assert store.connection.execute("SELECT sum(input_tokens) FROM usage").fetchone() == (15,)


def test_csv_values_like_12_point_0_are_whole_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path, [HEADER, *GOOD[:2], GOOD[2].replace(",300,", ",300.0,")])
    with DuckDBStore(":memory:") as store:
        assert import_file(store, path).input_tokens == 1800


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (GOOD[0].replace(",200,", ",-5,"), "output_tokens", "-5 is negative"),
        (GOOD[0].replace(",200,", ",2.5,"), "output_tokens", "'2.5' is not a whole number"),
        (GOOD[0].replace(",200,", ",abc,"), "output_tokens", "'abc' is not a whole number"),
        (GOOD[0].replace("2025-03-01T10:00:00Z", "2025-13-01T10:00"), "ts", "not an ISO 8601"),
        (GOOD[0].replace("2025-03-01T10:00:00Z", "2025-03-01 10:00:00"), "ts", "no time zone"),
        (GOOD[0].replace(",ok,", ",done,"), "status", "'done' is not a known status"),
        (GOOD[0].replace("claude-sonnet-4-5", ""), "model", "model is missing"),
        (GOOD[0].replace(",400,", ",4000,"), "cache_read_tokens", "exceed input_tokens"),
        (GOOD[0].replace(",0.01,", ",lots,"), "cost_usd", "'lots' is not an amount"),
    ],
)
def test_first_bad_csv_row_is_named(tmp_path: Path, bad: str, field: str, words: str) -> None:
    path = _write(tmp_path, [HEADER, *GOOD[:3], bad, GOOD[3]])
    with DuckDBStore(":memory:") as store:
        with pytest.raises(InvalidInput) as err:
            import_file(store, path)
        assert _sums(store)[0] == 0
    message = str(err.value)
    assert message.startswith(f"{path}, line 5, field '{field}': ")
    assert words in message


def test_naive_timestamps_with_a_time_zone(tmp_path: Path) -> None:
    rows = [HEADER, GOOD[0].replace("2025-03-01T10:00:00Z", "2025-03-01 10:00:00"), GOOD[1]]
    path = _write(tmp_path, rows)
    with DuckDBStore(":memory:") as store:
        import_file(store, path, tz=ZoneInfo("Asia/Shanghai"))
        ts = store.connection.execute("SELECT ts FROM usage ORDER BY request_id").fetchall()
    assert ts == [(datetime(2025, 3, 1, 2, 0),), (datetime(2025, 3, 1, 9, 0, 30),)]


def test_quoted_newlines_keep_line_numbers_right(tmp_path: Path) -> None:
    rows = [HEADER, GOOD[0].replace(",search,", ',"multi\nline",'), GOOD[1].replace(",50,", ",-1,")]
    path = _write(tmp_path, rows)
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput, match=r"line 4, field"):
        import_file(store, path)


def test_missing_required_column(tmp_path: Path) -> None:
    path = _write(tmp_path, ["ts,model,input_tokens", "2025-03-01T10:00:00Z,m,1"])
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput, match="output_tokens"):
        import_file(store, path)


def test_jsonl_positions(tmp_path: Path) -> None:
    good = json.dumps({"ts": "2025-03-01T10:00:00Z", "model": "m", "input_tokens": 1,
                       "output_tokens": 2})  # fmt: skip
    path = tmp_path / "e.jsonl"
    path.write_text(f"{good}\n\n{good}\n{good.replace('2}', '-2}')}\n")
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert str(err.value).startswith(f"{path}, line 4, field 'output_tokens': -2 is negative")


def test_truncated_jsonl(tmp_path: Path) -> None:
    good = json.dumps({"ts": "2025-03-01T10:00:00Z", "model": "m", "input_tokens": 1,
                       "output_tokens": 2})  # fmt: skip
    path = tmp_path / "e.jsonl"
    path.write_text(f"{good}\n{good}\n{good[:25]}")
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert f"{path}, line 3" in str(err.value)
    assert "ends early" in str(err.value)


def test_jsonl_strings_for_numbers_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    rows = [{"ts": "2025-03-01T10:00:00Z", "model": "m", "input_tokens": "12",
             "output_tokens": 3.0, "cost_usd": "0.25"}] * 2  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with DuckDBStore(":memory:") as store:
        summary = import_file(store, path, fmt="jsonl")
    assert (summary.input_tokens, summary.output_tokens) == (24, 6)
    assert summary.cost_usd == Decimal("0.5")


def test_parquet_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(
        pa.table({
            "ts": pa.array([datetime(2025, 3, 1, tzinfo=UTC)] * 3, pa.timestamp("us", "UTC")),
            "model": ["m", "m", "m"],
            "input_tokens": [1, 2, 3],
            "output_tokens": [1, -2, 3],
        }),
        path,
    )  # fmt: skip
    with DuckDBStore(":memory:") as store, pytest.raises(InvalidInput) as err:
        import_file(store, path)
    assert str(err.value).startswith(f"{path}, row 2, field 'output_tokens': -2 is negative")


def test_failed_import_leaves_the_store_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_file, "BLOCK_BYTES", 256)  # many batches written before the error
    lines = [HEADER] + [GOOD[0].replace(",r1", f",ok{i}") for i in range(200)]
    lines.append(GOOD[0].replace(",200,", ",-5,").replace(",r1", ",bad"))
    bad = _write(tmp_path, lines)
    good = _write(tmp_path, [HEADER, *GOOD], "good.csv")
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        import_file(store, good)
        before = _sums(store)
        with pytest.raises(InvalidInput, match="line 202"):
            import_file(store, bad)
        assert _sums(store) == before


def test_events_without_a_time_zone_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(
        pa.table({"ts": pa.array([datetime(2025, 3, 1)], pa.timestamp("us")), "model": ["m"],
                  "input_tokens": [1], "output_tokens": [1]}),
        path,
    )  # fmt: skip
    with DuckDBStore(":memory:") as store:
        with pytest.raises(InvalidInput, match=r"row 1, field 'ts'.*no time zone"):
            import_file(store, path)
        assert import_file(store, path, tz=UTC).rows_read == 1


def test_jsonl_unpaired_surrogate_escape_names_line_and_field(tmp_path: Path) -> None:
    good = {"ts": "2025-03-01T10:00:00Z", "model": "m", "input_tokens": 1, "output_tokens": 2}
    # A byte lost from "\ud800\udc00" (one character, escaped as a UTF-16 pair) leaves half.
    bad = json.dumps({**good, "team": "\U00010000"}).replace("\\udc00", ",udc00")
    path = tmp_path / "e.jsonl"
    path.write_text(f"{json.dumps(good)}\n{bad}\n")
    with DuckDBStore(":memory:") as store:
        with pytest.raises(InvalidInput) as err:
            import_file(store, path)
        assert str(err.value).startswith(f"{path}, line 2, field 'team': holds a lone UTF-16")
        assert _sums(store)[0] == 0  # the good first line was not stored either
