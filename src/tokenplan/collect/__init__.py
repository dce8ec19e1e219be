"""Turning files (usage CSVs, raw events, traces, provider usage reports) into store rows."""

from tokenplan.collect.detect import FORMATS, Source, detect_format
from tokenplan.collect.importer import ImportSummary, import_file

__all__ = ["FORMATS", "ImportSummary", "Source", "detect_format", "import_file"]
