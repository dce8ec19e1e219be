"""Turning files (usage CSVs, raw events, traces, provider usage reports) into store rows.

Names load on first use, so ``tokenplan.collect.sdk`` (imported by apps) stays light.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from tokenplan.collect.detect import FORMATS, Source, detect_format
    from tokenplan.collect.importer import ImportSummary, import_file

__all__ = ["FORMATS", "ImportSummary", "Source", "detect_format", "import_file"]

_LAZY = {
    "FORMATS": "tokenplan.collect.detect",
    "Source": "tokenplan.collect.detect",
    "detect_format": "tokenplan.collect.detect",
    "ImportSummary": "tokenplan.collect.importer",
    "import_file": "tokenplan.collect.importer",
}


def __getattr__(name: str) -> typing.Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tokenplan.collect' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
