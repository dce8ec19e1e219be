"""Reading the live counters `RedisSink` keeps: per-minute series and daily totals.

Frames are tidy ``unique_id, ds, y`` like `DuckDBStore.series`: ``unique_id`` is ``total``
or the dimension value (``(none)`` where events had none), ``ds`` the bucket start in naive
UTC, every bucket of the range present (0 where nothing happened). Minutes whose counters have
expired (older than 7 days) read as NaN, not 0, so a dashboard cannot mistake them for silence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final

import pandas as pd
import redis

from tokenplan.errors import InvalidInput, StoreError
from tokenplan.events import METRICS
from tokenplan.service.live_keys import (
    COST_SCALE,
    LIVE_DIMENSIONS,
    TOTAL,
    day_field,
    day_key,
    index_key,
    minute_key,
    series_name,
    unescape,
)

__all__ = ["LiveCounters"]

NONE_LABEL: Final = "(none)"
MAX_MINUTES: Final = 8 * 1440
MAX_DAYS: Final = 1000
_EPOCH = datetime(1970, 1, 1)
_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
# field -> amount, per bucket (epoch minute or epoch day)
Buckets = dict[int, dict[str, int]]


class LiveCounters:
    """Per-minute counters (kept 7 days) and daily totals (kept 400 days) from Redis."""

    def __init__(self, client: redis.Redis, *, where: str = "Redis") -> None:
        self._client = client
        self._where = where

    def series(
        self,
        metric: str,
        by: str | None = None,
        *,
        since: datetime,
        until: datetime,
        exact: bool = False,
    ) -> pd.DataFrame:
        """``metric`` per minute over ``[since, until)``, for the whole or per ``by`` value."""
        _check_metric(metric)
        lo, hi = _bucket_range(since, until, _MINUTE)
        if hi - lo >= MAX_MINUTES:
            raise InvalidInput(
                f"the live counters keep minutes for 7 days; ask for at most {MAX_MINUTES:,} "
                "minutes, or read daily totals."
            )
        days = _days(lo // 1440, hi // 1440) if hi >= lo else []
        names = self._series_names(by, days)
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            for day in days:
                pipe.hgetall(minute_key(name, day))
                pipe.hget(day_key(name, day), day_field(day, "rows"))
        replies = iter(self._execute(pipe))
        merged: dict[str, Buckets] = defaultdict(dict)
        expired: dict[str, set[date]] = defaultdict(set)
        for name in names:
            label = _label(by, name)
            for day in days:
                minutes, day_rows = next(replies), next(replies)
                if not minutes and int(day_rows or 0) > 0:
                    expired[label].add(day)
                base = (day - _EPOCH.date()).days * 1440
                for raw, amount in minutes.items():
                    hhmm, field = _text(raw).split(":", 1)
                    minute = base + int(hhmm[:2]) * 60 + int(hhmm[2:])
                    if lo <= minute <= hi:
                        _add(merged[label], minute, field, int(amount))
        return _frame(metric, merged, expired, range(lo, hi + 1), _MINUTE, exact, by_day=False)

    def daily(
        self,
        metric: str,
        by: str | None = None,
        *,
        since: datetime,
        until: datetime,
        exact: bool = False,
    ) -> pd.DataFrame:
        """``metric`` per UTC day over ``[since, until)``, for the whole or per ``by`` value."""
        _check_metric(metric)
        lo, hi = _bucket_range(since, until, _DAY)
        if hi - lo >= MAX_DAYS:
            raise InvalidInput(f"ask for at most {MAX_DAYS:,} days of daily totals.")
        days = _days(lo, hi) if hi >= lo else []
        months = sorted({d.replace(day=1) for d in days})
        names = self._series_names(by, days)
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            for month in months:
                pipe.hgetall(day_key(name, month))
        replies = iter(self._execute(pipe))
        merged: dict[str, Buckets] = defaultdict(dict)
        for name in names:
            label = _label(by, name)
            for month in months:
                for raw, amount in next(replies).items():
                    dd, field = _text(raw).split(":", 1)
                    day = (month.replace(day=int(dd)) - _EPOCH.date()).days
                    if lo <= day <= hi:
                        _add(merged[label], day, field, int(amount))
        return _frame(metric, merged, {}, range(lo, hi + 1), _DAY, exact, by_day=True)

    def _series_names(self, by: str | None, days: list[date]) -> list[str]:
        if by is None:
            return [TOTAL]
        if by not in LIVE_DIMENSIONS:
            raise InvalidInput(
                f"the live counters are split by {', '.join(LIVE_DIMENSIONS)}, not {by!r}."
            )
        if not days:
            return []
        try:
            tokens = self._client.sunion([index_key(by, d) for d in days])
        except redis.RedisError as exc:
            raise StoreError(f"reading live counters from {self._where} failed: {exc}") from exc
        return sorted(series_name(by, _text(t)) for t in tokens)

    def _execute(self, pipe: redis.client.Pipeline) -> list:
        try:
            return list(pipe.execute())
        except redis.RedisError as exc:
            raise StoreError(f"reading live counters from {self._where} failed: {exc}") from exc


def _bucket_range(since: datetime, until: datetime, width: timedelta) -> tuple[int, int]:
    """First and last bucket (counted from the epoch) of ``[since, until)``."""
    start, end = _naive_utc(since), _naive_utc(until)
    lo = (start - _EPOCH) // width
    hi = (end - timedelta(microseconds=1) - _EPOCH) // width
    return int(lo), int(hi)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InvalidInput(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}.")


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _days(lo: int, hi: int) -> list[date]:
    first = _EPOCH.date() + timedelta(days=lo)
    return [first + timedelta(days=k) for k in range(hi - lo + 1)]


def _label(by: str | None, name: str) -> str:
    if by is None:
        return TOTAL
    value = unescape(name.split("=", 1)[1])
    return NONE_LABEL if value is None else value


def _add(buckets: Buckets, bucket: int, field: str, amount: int) -> None:
    fields = buckets.setdefault(bucket, {})
    fields[field] = fields.get(field, 0) + amount


def _value(metric: str, fields: dict[str, int] | None) -> int | Decimal | None:
    """The metric from one bucket's fields; None where it is unknown (every row unpriced)."""
    if not fields:
        return Decimal(0) if metric == "cost_usd" else 0
    if metric == "total_tokens":
        return sum(fields.get(f, 0) for f in ("input_tokens", "output_tokens", "unsplit_tokens"))
    if metric == "cost_usd":
        rows = fields.get("rows", 0)
        if rows and fields.get("unpriced_rows", 0) >= rows:
            return None
        return Decimal(fields.get("cost_pusd", 0)).scaleb(-COST_SCALE)
    return fields.get(metric, 0)


def _frame(
    metric: str,
    merged: dict[str, Buckets],
    expired: dict[str, set[date]],
    grid: Iterable[int],
    width: timedelta,
    exact: bool,
    *,
    by_day: bool,
) -> pd.DataFrame:
    buckets = list(grid)
    ids: list[str] = []
    ds: list[datetime] = []
    ys: list[int | Decimal | None] = []
    for label in sorted(set(merged) | set(expired)):
        gone = expired.get(label, set())
        for bucket in buckets:
            day = _EPOCH.date() + timedelta(days=bucket if by_day else bucket // 1440)
            value = None if day in gone else _value(metric, merged[label].get(bucket))
            ids.append(label)
            ds.append(_EPOCH + bucket * width)
            ys.append(value)
    frame = pd.DataFrame(
        {"unique_id": pd.Series(ids, dtype=object), "ds": pd.Series(ds, dtype="datetime64[us]")}
    )
    if exact:
        frame["y"] = pd.Series(ys, dtype=object)
        whole = [y for y in ys if isinstance(y, int)]
        if metric != "cost_usd" and len(whole) == len(ys) and max(whole, default=0) < 2**63:
            frame["y"] = frame["y"].astype("int64")
    else:
        frame["y"] = pd.Series([float("nan") if y is None else float(y) for y in ys], dtype=float)
    return frame


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
