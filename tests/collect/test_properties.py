"""Property tests: random valid events survive CSV and JSONL; random damage is `InvalidInput`."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenplan.collect import import_file
from tokenplan.errors import InvalidInput
from tokenplan.store import DuckDBStore

FIELDS = ["ts", "provider", "model", "input_tokens", "output_tokens", "cache_read_tokens",
          "status", "cost_usd", "team", "request_id"]  # fmt: skip
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]
)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """One valid raw event as a plain dict."""
    inp = draw(st.integers(0, 10**12))
    moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=ZONES))
    cost = draw(st.none() | st.decimals(0, 10**6, places=6, allow_nan=False))
    return {
        "ts": moment.isoformat(),
        "provider": draw(st.sampled_from(["anthropic", "openai", "relay-1"])),
        "model": draw(st.sampled_from(["claude-sonnet-4-5", "gpt-4o", 'a "quoted", model'])),
        "input_tokens": inp,
        "output_tokens": draw(st.integers(0, 10**9)),
        "cache_read_tokens": draw(st.integers(0, inp)),
        "status": draw(st.sampled_from(["ok", "error", "rate_limited"])),
        "cost_usd": None if cost is None else str(cost),
        "team": draw(st.none() | TEXT),
        "request_id": None,
    }


def _expected(rows: list[dict[str, Any]]) -> tuple[Any, ...]:
    costs = [Decimal(r["cost_usd"]) for r in rows if r["cost_usd"] is not None]
    return (
        len(rows),
        sum(r["input_tokens"] for r in rows),
        sum(r["output_tokens"] for r in rows),
        sum(r["cache_read_tokens"] for r in rows),
        sum(r["status"] != "ok" for r in rows),
        sum(costs) if costs else None,
    )


def _actual(path: Path) -> tuple[Any, ...]:
    with DuckDBStore(":memory:") as store:
        import_file(store, path)
        row = store.connection.execute(
            "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
            "sum(failed_requests), sum(cost_usd) FROM usage"
        ).fetchall()[0]
    return tuple(Decimal(v).normalize() if isinstance(v, Decimal) else v for v in row)


def _norm(expected: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(Decimal(v).normalize() if isinstance(v, Decimal) else v for v in expected)


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@settings(max_examples=40, deadline=None)
@given(st.lists(events(), min_size=1, max_size=30))
def test_events_round_trip_through_csv_and_jsonl(rows: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        as_csv = Path(tmp) / "e.csv"
        as_csv.write_text(_csv_text(rows), encoding="utf-8")
        as_jsonl = Path(tmp) / "e.jsonl"
        as_jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        assert _actual(as_csv) == _norm(_expected(rows))
        assert _actual(as_jsonl) == _norm(_expected(rows))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(events(), min_size=1, max_size=8),
    st.sampled_from(["csv", "jsonl"]),
    st.data(),
)
def test_damaged_files_give_invalid_input(
    rows: list[dict[str, Any]], kind: str, data: st.DataObject
) -> None:
    text = _csv_text(rows) if kind == "csv" else "".join(json.dumps(r) + "\n" for r in rows)
    cut = data.draw(st.integers(1, len(text) - 1))
    how = data.draw(st.sampled_from(["truncate", "replace", "insert"]))
    junk = data.draw(st.sampled_from(['"', ",", "-", "x", "{", "\n", "9.5", "\x00", "é"]))
    if how == "truncate":
        damaged = text[:cut]
    elif how == "replace":
        damaged = text[:cut] + junk + text[cut + 1 :]
    else:
        damaged = text[:cut] + junk + text[cut:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"e.{kind}"
        path.write_text(damaged, encoding="utf-8")
        message = str(path)
        try:
            with DuckDBStore(":memory:") as store:
                import_file(store, path, fmt=f"events_{kind}")
        except InvalidInput as exc:  # the only acceptable failure, and it names the file
            message = str(exc)
        assert message.startswith(str(path))
