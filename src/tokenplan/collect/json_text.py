"""Parsed JSON whose text can be stored: half a UTF-16 surrogate pair is refused where it is.

JSON may escape a character outside the Basic Multilingual Plane as a pair (``"\\ud800\\udc00"``);
a damaged export can leave half of it, which Python decodes to a lone surrogate that no UTF-8
text, and so no store, can hold. The HTTP collector refuses the same in the same words
(`tokenplan.service.ingest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenplan.errors import InvalidInput, at


def refuse_lone_surrogates(record: Mapping[str, Any], source: str | None, line: int | None) -> None:
    """`InvalidInput` naming the first field of ``record`` whose text, at any depth, is not."""
    for name, value in record.items():
        if _holds_lone_surrogate(value) or _holds_lone_surrogate(name):
            raise InvalidInput(
                f"{at(source, line, str(name))}: holds a lone UTF-16 surrogate (\\ud800-\\udfff),"
                " which is not text."
            )


def _holds_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        if value.isascii():
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, Mapping):
        return any(_holds_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_lone_surrogate(v) for v in value)
    return False
