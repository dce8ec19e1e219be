"""deploy/grafana-dashboard.json: importable, datasource chosen on import, queries that work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promql import DEPLOY, GRAFANA_VARIABLES, NAME, Exposed, check_syntax, problems

from metrics_world import World

DASHBOARD = DEPLOY / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _targets() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, t) for p in _dashboard()["panels"] for t in p["targets"]]


def _runnable(expr: str) -> str:
    """``expr`` with Grafana's variables replaced as Grafana would before sending it."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr.replace("$instance", "tokenplan:8000")


def test_the_datasource_is_a_variable_chosen_on_import() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["datasource"] == DATASOURCE
    # No panel or query is tied to one Grafana's datasource uid.
    for panel, target in _targets():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert target["datasource"] == DATASOURCE, panel["title"]
    assert "__inputs" not in dashboard
    assert "id" not in dashboard


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = _dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(set(refs)) == len(refs), panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


def test_every_query_reads_series_a_real_scrape_has(metrics_world: World) -> None:
    exposed = Exposed.of(metrics_world.text)
    found = {
        f"{panel['title']} {target['refId']}": wrong
        for panel, target in _targets()
        if (wrong := problems(target["expr"], exposed))
    }
    assert not found


def test_every_query_parses(tmp_path: Path) -> None:
    check_syntax(
        {f"panel_{p['id']}_{t['refId']}": _runnable(t["expr"]) for p, t in _targets()},
        tmp_path,
    )


def test_it_shows_usage_spend_forecast_bands_budgets_and_headroom() -> None:
    exprs = " ".join(t["expr"] for _, t in _targets())
    used = set(NAME.findall(exprs))
    assert used >= {
        "tokenplan_tokens_total",
        "tokenplan_cost_usd_total",
        "tokenplan_forecast_tokens",
        "tokenplan_budget_projected_usd",
        "tokenplan_budget_limit_usd",
        "tokenplan_budget_overrun_probability",
        "tokenplan_ratelimit_headroom_ratio",
        "tokenplan_plan_age_seconds",
    }
    for bound in ("lo_80", "hi_80", "lo_95", "hi_95"):
        assert f'bound="{bound}"' in exprs
    assert "sum by (model) (rate(tokenplan_tokens_total" in exprs
