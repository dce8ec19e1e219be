"""Hostile model and provider names still make a valid exposition, in both text formats."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from metrics_world import FixedPlans
from tokenplan.events import UsageEvent, events_to_table
from tokenplan.service.metrics import register_metrics
from tokenplan.store import open_store
from tokenplan.store.queries import queries_for

HOSTILE = (
    'quote"d',
    "back\\slash",
    "new\nline",
    'x"} 1\n# HELP tokenplan_tokens_total forged\ntokenplan_tokens_total 1e99',
    "'; DROP TABLE usage; --",
    "模型-中文",
    "🚀 rocket",
    "\x00nul",
    "\u202eright-to-left",
    "tab\tand\rreturn",
    "\\n not a newline",
    "{{ $labels.model }}",
)
# Any text a client could send as a name; lone surrogates cannot be stored as UTF-8.
NAMES = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


class Scraper:
    """One store and collector for many examples: each example's providers get a fresh prefix.

    Opening a store costs a quarter second; sharing one keeps the property test fast, and the
    prefix keeps each example's series apart from the earlier ones.
    """

    def __init__(self) -> None:
        self.store = open_store(":memory:")
        self.registry = CollectorRegistry()
        register_metrics(
            self.registry,
            totals=queries_for(self.store),
            plans=FixedPlans(None),
            max_models=None,
        )
        self.examples = 0

    def scrape(self, names: list[tuple[str, str]]) -> tuple[dict[tuple[str, str], float], str, str]:
        """Write one event per (model, provider); the expected totals and both expositions."""
        self.examples += 1
        prefix = f"{self.examples}:"
        ts = datetime(2025, 3, 3, tzinfo=UTC)
        events = [
            UsageEvent(ts=ts, provider=prefix + p, model=m, input_tokens=10 + i, output_tokens=1)
            for i, (m, p) in enumerate(names)
        ]
        self.store.write(events_to_table(events))
        expected: dict[tuple[str, str], float] = {}
        for e in events:
            expected[e.model, e.provider] = (
                expected.get((e.model, e.provider), 0.0) + e.input_tokens
            )
        text = generate_latest(self.registry).decode()
        openmetrics = generate_openmetrics(self.registry).decode()
        return expected, text, openmetrics


@pytest.fixture(scope="module")
def scraper() -> Iterator[Scraper]:
    """A shared store and collector."""
    scraper = Scraper()
    yield scraper
    scraper.store.close()


def _inputs(families: Iterable[Metric], prefix: str) -> dict[tuple[str, str], float]:
    """The input-token counters of one example (its providers start with ``prefix``)."""
    return {
        (s.labels["model"], s.labels["provider"]): s.value
        for f in families
        for s in f.samples
        if s.name == "tokenplan_tokens_total"
        and s.labels["kind"] == "input"
        and s.labels["provider"].startswith(prefix)
    }


def test_hostile_names_come_back_exactly_and_forge_nothing(scraper: Scraper) -> None:
    names = [(n, "provider " + n) for n in HOSTILE]
    expected, text, openmetrics = scraper.scrape(names)
    prefix = f"{scraper.examples}:"
    assert _inputs(text_string_to_metric_families(text), prefix) == expected
    assert _inputs(parse_openmetrics(openmetrics), prefix) == expected
    # The forged HELP line and sample stayed inside a label value.
    helps = [line for line in text.splitlines() if line.startswith("# HELP tokenplan_tokens_total")]
    assert len(helps) == 1
    assert "forged" not in helps[0]
    assert 1e99 not in _inputs(text_string_to_metric_families(text), "").values()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(NAMES, NAMES), min_size=1, max_size=4))
def test_any_names_make_a_valid_exposition(scraper: Scraper, names: list[tuple[str, str]]) -> None:
    expected, text, openmetrics = scraper.scrape(names)
    prefix = f"{scraper.examples}:"
    assert _inputs(text_string_to_metric_families(text), prefix) == expected
    assert _inputs(parse_openmetrics(openmetrics), prefix) == expected
