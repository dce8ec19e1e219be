"""What the deploy files' PromQL refers to, checked against what a real scrape exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tokenplan.store.queries import REQUEST_STATUSES, TOKEN_KINDS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
# Labels with a fixed set of values, which a query may name; the rest (model, budget, ...) are
# the user's own names. Values a scrape may show that a small store does not have:
POSSIBLE = {"kind": set(TOKEN_KINDS), "status": set(REQUEST_STATUSES)}
ENUMERATED = {"kind", "status", "horizon", "bound", "period"}
# Grafana's variables, as a PromQL parser can read them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

NAME = re.compile(r"\b(tokenplan_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b(tokenplan_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


@dataclass
class Exposed:
    """Sample names, their label names and the label values seen, from one scrape."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def of(cls, text: str) -> Exposed:
        """Read an exposition."""
        exposed = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                exposed.labels.setdefault(sample.name, set()).update(sample.labels)
                for label, value in sample.labels.items():
                    exposed.values[label].add(value)
        for label, values in POSSIBLE.items():
            exposed.values[label] |= values
        return exposed


def problems(expr: str, exposed: Exposed) -> list[str]:
    """Every metric, label and label value in ``expr`` that the scrape does not have."""
    found = []
    names = set(NAME.findall(expr))
    if not names:
        found.append(f"{expr!r} uses no tokenplan metric")
    labels = set(TARGET_LABELS)
    for name in names:
        if name not in exposed.labels:
            found.append(f"{name} is not exposed")
        else:
            labels |= exposed.labels[name]
    for name, matchers in SELECTOR.findall(expr):
        for label, op, value in MATCHER.findall(matchers):
            if label in TARGET_LABELS:
                continue
            if label not in exposed.labels.get(name, set()):
                found.append(f"{name} has no label {label!r}")
            elif label not in ENUMERATED:
                continue
            elif op == "=" and value not in exposed.values[label]:
                found.append(f"{name}: no series has {label}={value!r}")
            elif op == "=~" and set(value.split("|")) - exposed.values[label]:
                found.append(f"{name}: {label}=~{value!r} names unknown values")
    for group in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in labels:
                found.append(f"grouping by {label!r}, which no series in {expr!r} has")
    return found


def promtool() -> str:
    """The promtool binary (`make system-deps` installs it)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make system-deps` (or `make promtool`).")
    return path


def check_syntax(exprs: dict[str, str], tmp_path: Path) -> None:
    """Parse each expression with promtool, as recording rules named by their key."""
    rules = [{"record": f"check:{key}", "expr": expr} for key, expr in exprs.items()]
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
