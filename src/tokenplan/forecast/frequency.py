"""Bucket widths and the seasonal cycles that fit them (daily, weekly, hourly)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
from pandas.tseries.offsets import BaseOffset

from tokenplan.errors import InvalidInput

_DAY = 86_400
_WEEK = 7 * _DAY
_UNITS = {"s": 1, "sec": 1, "t": 60, "m": 60, "min": 60, "h": 3600, "hour": 3600}
_UNITS |= {"d": _DAY, "day": _DAY, "w": _WEEK, "week": _WEEK}
_PATTERN = re.compile(r"^\s*(\d*)\s*([a-zA-Z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Cadence:
    """A bucket width with its candidate seasons, shortest first."""

    alias: str
    seconds: int
    seasons: tuple[int, ...]

    @property
    def offset(self) -> BaseOffset:
        """The pandas offset of one bucket."""
        return pd.tseries.frequencies.to_offset(pd.Timedelta(seconds=self.seconds))

    @property
    def pandas(self) -> str:
        """A pandas frequency alias for this width (``1h``, ``10min``, ``1D``)."""
        for unit, size in (("D", _DAY), ("h", 3600), ("min", 60)):
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"

    @property
    def primary(self) -> int:
        """The main (shortest) season, or 1 when the width has none; used to scale MASE."""
        return self.seasons[0] if self.seasons else 1

    def usable(self, n: int) -> tuple[int, ...]:
        """Seasons with at least two full cycles in ``n`` observations."""
        return tuple(s for s in self.seasons if n >= 2 * s)


def make_cadence(freq: str) -> Cadence:
    """Parse ``1h`` / ``10min`` / ``1d`` / ``1min`` into a `Cadence` with its seasons."""
    match = _PATTERN.match(str(freq))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise InvalidInput(f"frequency {freq!r} is not understood; use e.g. 1min, 10min, 1h or 1d.")
    seconds = int(match.group(1) or 1) * _UNITS[unit]
    if seconds <= 0:
        raise InvalidInput(f"frequency {freq!r} must be a positive width such as 1h.")
    seasons: list[int] = []
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
    for cycle in cycles:
        if cycle % seconds == 0 and cycle // seconds >= 2:
            seasons.append(cycle // seconds)
    return Cadence(alias=str(freq), seconds=seconds, seasons=tuple(seasons))
