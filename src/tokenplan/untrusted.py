"""Text from files and users, made safe to show: nothing in it may drive the terminal.

Imports nothing else of tokenplan, so every stage (collect's progress bar, the CLI, logs)
can use it.
"""

from __future__ import annotations

# Characters that would drive the terminal (C0, DEL, C1: ESC sequences, OSC titles), reorder
# text (bidi controls) or hide in it (zero-width, BOM): shown as ``\x1b`` / ``\u202e``.
_INVISIBLE = frozenset(
    [
        *range(0x00, 0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x180E,
        *range(0x200B, 0x2010),
        *range(0x2028, 0x202F),
        *range(0x2060, 0x2070),
        0xFEFF,
    ]
)
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _INVISIBLE}


def visible(text: str) -> str:
    """``text`` with control, bidi and zero-width characters written as escapes (``\\x1b``)."""
    return text.translate(_ESCAPES)
