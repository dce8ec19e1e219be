"""deploy/prometheus-rules.yml: valid for promtool, unit-tested by it, and on real series."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from promql import DEPLOY, Exposed, problems, promtool

from metrics_world import World

RULES = DEPLOY / "prometheus-rules.yml"
UNIT_TESTS = Path(__file__).with_name("prometheus-rules.test.yml")


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_the_alerts_fire_as_the_unit_tests_expect() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", UNIT_TESTS.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=UNIT_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", UNIT_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in _rules()}, "every alert needs a unit test"


def test_the_rules_read_only_series_a_real_scrape_has(metrics_world: World) -> None:
    exposed = Exposed.of(metrics_world.text)
    found = {}
    for rule in _rules():
        expr = str(rule["expr"])
        wrong = problems(expr, exposed)
        templates = yaml.safe_dump(rule.get("annotations", {}))
        series_labels = set().union(
            *(exposed.labels.get(n, set()) for n in re.findall(r"tokenplan_\w+", expr))
        )
        for label in re.findall(r"\$labels\.(\w+)", templates):
            if label not in series_labels | {"instance", "job"}:
                wrong.append(f"annotation uses $labels.{label}, which the series lack")
        if wrong:
            found[rule["alert"]] = wrong
    assert not found


def test_the_unit_tests_feed_series_a_real_scrape_has(metrics_world: World) -> None:
    exposed = Exposed.of(metrics_world.text)
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    found = [
        wrong
        for test in tests
        for series in test["input_series"]
        for wrong in problems(series["series"], exposed)
    ]
    assert not found


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}  # type: ignore[index]
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description"}  # type: ignore[arg-type]
        assert rule.get("for"), f"{rule['alert']} would fire on one evaluation"
