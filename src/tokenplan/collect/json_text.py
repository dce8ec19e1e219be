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
            # The name itself may be what is broken: shown escaped, so the message prints.
            shown = str(name).encode("utf-8", "backslashreplace").decode("utf-8")
            raise InvalidInput(
                f"{at(source, line, shown)}: holds a lone UTF-16 surrogate (\\ud800-\\udfff),"
                " which is not text."
            )


def _holds_lone_surrogate(value: Any) -> bool:
    # A loop, not recursion: a value nested as deeply as the JSON parser allows must not
    # overflow the stack here.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and not _encodable(item):
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
