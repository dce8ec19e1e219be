"""A store of known usage and a fast forecaster, for the report tests.

A module of its own, not conftest: a bare ``from conftest import`` takes whichever folder's
conftest was loaded last in the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa

from tokenplan.events import USAGE_SCHEMA

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
DAYS = 21
CLOCK = datetime(2025, 3, 24, 0, 30, tzinfo=UTC)
# (model, team, tokens per hour at the daily peak, USD per 1M tokens)
SERIES = (
    ("claude-sonnet", "search", 600_000, Decimal(6)),
    ("claude-haiku", "search", 300_000, Decimal(2)),
    ("gpt-4o-mini", "support", 200_000, Decimal("0.5")),
)


def hourly_shape(hour: int) -> float:
    """Daily profile: quiet nights, a peak at 14:00 UTC."""
    return {14: 1.0, 13: 0.8, 15: 0.8}.get(hour, 0.5 if 8 <= hour <= 20 else 0.1)


def usage_rows(models: Sequence[tuple[str, str, int, Decimal]] = SERIES) -> pa.Table:
    """Hourly buckets for three weeks, identical every day (so forecasts are exact)."""
    cols: dict[str, list[object]] = {name: [] for name in USAGE_SCHEMA.names}
    for h in range(DAYS * 24):
        ts = (pd.Timestamp(START) + pd.Timedelta(hours=h)).tz_localize(None).to_pydatetime()
        for model, team, peak, price in models:
            total = int(peak * hourly_shape(h % 24))
            inp, out = total * 3 // 4, total - total * 3 // 4
            row = {
                "ts": ts,
                "bucket_s": 3600,
                "provider": "anthropic" if model.startswith("claude") else "openai",
                "model": model,
                "team": team,
                "requests": max(total // 2000, 1),
                "input_tokens": inp,
                "output_tokens": out,
                "cost_usd": price * total / Decimal(1_000_000),
                "source": "synthetic",
            }
            for name in cols:
                cols[name].append(row.get(name))
    return pa.Table.from_pydict(cols, schema=USAGE_SCHEMA)


@dataclass
class StubResult:
    """Shaped like `tokenplan.forecast.ForecastResult`."""

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def seasonal_naive(
    df: pd.DataFrame, horizon: int, freq: str = "1h", levels: Sequence[int] = (80, 95)
) -> StubResult:
    """Repeat the last day; ranges widen by a fixed share so bands are visible and ordered."""
    out = []
    for uid, part in df.groupby("unique_id", sort=False):
        part = part.sort_values("ds")
        last = part["ds"].iloc[-1]
        season = part["y"].to_numpy()[-24:]
        ds = pd.date_range(last + pd.Timedelta(hours=1), periods=horizon, freq="h")
        mean = [float(season[i % 24]) for i in range(horizon)]
        frame = pd.DataFrame({"unique_id": uid, "ds": ds, "mean": mean})
        for level, width in zip(levels, (0.1, 0.25), strict=False):
            frame[f"lo_{level}"] = frame["mean"] * (1 - width)
            frame[f"hi_{level}"] = frame["mean"] * (1 + width)
        out.append(frame)
    return StubResult(pd.concat(out, ignore_index=True), ["stand-in seasonal naive (tests)"])
