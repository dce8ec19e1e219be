"""The capacity report: its data (`Report`), how it is built, and its HTML and JSON forms."""

from tokenplan.report.build import build_report, report_from_plan
from tokenplan.report.html import render_html, write_html
from tokenplan.report.model import Currency, Report, report_to_dict, write_json

__all__ = [
    "Currency",
    "Report",
    "build_report",
    "render_html",
    "report_from_plan",
    "report_to_dict",
    "write_html",
    "write_json",
]
