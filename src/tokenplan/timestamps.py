"""The one ISO 8601 formatter for timestamps shown to users and written to JSON."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["ISO_FORMAT", "iso_utc"]

# UTC with a literal Z: what the CSV contracts and report.json use.
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_utc(value: Any) -> str:
    """A timestamp as ISO 8601 UTC with ``Z`` (naive input is taken as UTC)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.strftime(ISO_FORMAT)
