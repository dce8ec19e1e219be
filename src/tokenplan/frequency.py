"""Bucket frequencies such as ``1min``, ``10min``, ``1h``, ``1d``, ``1w``."""

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
_PATTERN = re.compile(r"^\s*(\d*)\s*([a-zA-Z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Frequency:
    """A fixed bucket width."""

    seconds: int

    @property
    def label(self) -> str:
        """Canonical name: ``10min``, ``1h``, ``1d``."""
        for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"

    @property
    def pandas(self) -> str:
        """The pandas offset alias for this width."""
        for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds}s"

    @property
    def interval(self) -> str:
        """A DuckDB interval literal."""
        return f"{self.seconds} seconds"


def parse_freq(text: str) -> Frequency:
    """Parse ``1h`` / ``10min`` / ``1d`` / ``H`` into a `Frequency`."""
    match = _PATTERN.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise InvalidInput(
            f"frequency {text!r} is not understood; use e.g. 1min, 10min, 1h, 1d or 1w."
        )
    count = int(match.group(1) or 1)
    if count <= 0:
        raise InvalidInput(f"frequency {text!r} must be positive.")
    return Frequency(count * _UNITS[unit])


def infer_freq(seconds_between: list[int] | tuple[int, ...]) -> Frequency:
    """Pick the input's own spacing: the smallest positive gap between bucket starts."""
    gaps = [s for s in seconds_between if s > 0]
    if not gaps:
        raise InvalidInput(
            "cannot infer the frequency from fewer than two distinct timestamps; pass --freq."
        )
    return Frequency(min(gaps))
