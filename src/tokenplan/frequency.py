"""Bucket frequencies such as ``1min``, ``10min``, ``1h``, ``1d``, ``1w``, ``1mo``, and seasons.

The one parser of frequency text: the store, the planner and the forecaster all use it.
Calendar months (``1mo``) have no fixed width, so only readers that bucket by the calendar
(`tokenplan usage`, `tokenplan forecast`) accept them (``parse_freq(text, calendar=True)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tokenplan.errors import InvalidInput

_UNITS = {
    "s": 1,
    "sec": 1,
    "min": 60,
    "m": 60,
    "t": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "week": 604800,
}
_MONTH_UNITS = ("mo", "mon", "month", "months")
_DAY = 86_400
_WEEK = 7 * _DAY
_PATTERN = re.compile(r"^\s*(\d*)\s*([a-zA-Z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Frequency:
    """A bucket width: ``seconds`` long, or ``months`` calendar months (then ``seconds`` is 0)."""

    seconds: int
    months: int = 0

    @property
    def calendar(self) -> bool:
        """Whole days, weeks or months: buckets that start at a midnight of some time zone."""
        return self.months > 0 or (self.seconds > 0 and self.seconds % _DAY == 0)

    @property
    def label(self) -> str:
        """Canonical name: ``10min``, ``1h``, ``1d``, ``1mo``."""
        if self.months:
            return f"{self.months}mo"
        for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"

    @property
    def pandas(self) -> str:
        """The pandas offset alias for this width (``MS``, month starts, for months)."""
        if self.months:
            return f"{self.months}MS"
        for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"

    @property
    def interval(self) -> str:
        """A DuckDB interval literal."""
        return f"{self.months} months" if self.months else f"{self.seconds} seconds"


def parse_freq(text: str, *, calendar: bool = False) -> Frequency:
    """Parse ``1h`` / ``10min`` / ``1d`` / ``H`` (and, with ``calendar``, ``1mo``)."""
    match = _PATTERN.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or (unit not in _UNITS and unit not in _MONTH_UNITS):
        months = ", 1mo" if calendar else ""
        raise InvalidInput(
            f"frequency {text!r} is not understood; use e.g. 1min, 10min, 1h, 1d, 1w{months}."
        )
    count = int(match.group(1) or 1)
    if count <= 0:
        raise InvalidInput(f"frequency {text!r} must be positive.")
    if unit in _MONTH_UNITS:
        if not calendar:
            raise InvalidInput(
                f"frequency {text!r}: calendar months have no fixed width, so only `tokenplan "
                "usage` and `tokenplan forecast` take them; use a fixed width such as 1d here."
            )
        return Frequency(0, months=count)
    return Frequency(count * _UNITS[unit])


def infer_freq(seconds_between: list[int] | tuple[int, ...]) -> Frequency:
    """Pick the input's own spacing: the smallest positive gap between bucket starts."""
    gaps = [s for s in seconds_between if s > 0]
    if not gaps:
        raise InvalidInput(
            "cannot infer the frequency from fewer than two distinct timestamps; pass --freq."
        )
    return Frequency(min(gaps))


@dataclass(frozen=True, slots=True)
class Cadence:
    """A bucket width with its candidate seasons (in buckets), shortest first."""

    alias: str
    seconds: int
    seasons: tuple[int, ...]

    @property
    def pandas(self) -> str:
        """A pandas frequency alias for this width (``1h``, ``10min``, ``1D``)."""
        return Frequency(self.seconds).pandas

    @property
    def primary(self) -> int:
        """The main (shortest) season, or 1 when the width has none; used to scale MASE."""
        return self.seasons[0] if self.seasons else 1

    def usable(self, n: int) -> tuple[int, ...]:
        """Seasons with at least two full cycles in ``n`` observations."""
        return tuple(s for s in self.seasons if n >= 2 * s)


def make_cadence(freq: str) -> Cadence:
    """Parse ``1h`` / ``10min`` / ``1d`` / ``1min`` into a `Cadence` with its seasons."""
    seconds = parse_freq(freq).seconds
    cycles: tuple[int, ...]
    if seconds < 600:
        # Minute buckets: an hourly cycle (cron jobs, batch loops) and the daily one; a week of
        # minutes (10,080) is too long for any of the models to estimate.
        cycles = (3600, _DAY)
    elif seconds < _DAY:
        cycles = (_DAY, _WEEK)
    elif seconds == _DAY:
        cycles = (_WEEK,)
    else:
        cycles = ()
    seasons = tuple(c // seconds for c in cycles if c % seconds == 0 and c // seconds >= 2)
    return Cadence(alias=str(freq), seconds=seconds, seasons=seasons)
