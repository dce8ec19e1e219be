"""The service in-process (httpx over ASGI): auth, ingest, reads from the cached plan, errors."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from app_harness import (
    AUTH,
    BUDGETS,
    LIMITS,
    PLAN,
    SRC,
    TOKEN,
    cli_json,
    event_json,
    repeat_last_day,
    running,
    seeded_store,
)
from prometheus_client import Gauge

from tokenplan.capacity import PlanSettings
from tokenplan.errors import ConfigError, ForecastError
from tokenplan.plan.budgets import load_budgets
from tokenplan.plan.limits import load_limits
from tokenplan.service.auth import Tokens
from tokenplan.service.plans import PlanConfig
from tokenplan.service.settings import ServiceSettings, load_tokens


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("configs")
    (tmp / "budgets.toml").write_text(BUDGETS)
    (tmp / "limits.toml").write_text(LIMITS)
    return {"budgets": tmp / "budgets.toml", "limits": tmp / "limits.toml"}


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, configs: dict[str, Path]) -> dict[str, Any]:
    """One seeded store; what the CLI prints for it, then what the service serves for it."""
    db = seeded_store(tmp_path_factory.mktemp("same") / "s.duckdb")
    b, lim = str(configs["budgets"]), str(configs["limits"])
    cli = {
        "budget": cli_json(
            "budget", "--db", str(db), "--config", b, "--horizon", "24", "--format", "json"
        ),
        "headroom": cli_json(
            "headroom", "--db", str(db), "--limits", lim, "--horizon", "24", "--format", "json"
        ),
        "spikes": cli_json("spikes", "--db", str(db), "--format", "json"),
        "usage": cli_json(
            "usage",
            "--db",
            str(db),
            "--metric",
            "cost_usd",
            "--freq",
            "1d",
            "--by",
            "model",
            "--format",
            "json",
        ),
    }
    config = PlanConfig(
        settings=PlanSettings(horizon_hours=24),
        budgets=load_budgets(configs["budgets"]),
        limits=load_limits(configs["limits"]),
    )
    with running(db, config=config, forecaster=None) as service:
        before = service.get("/v1/plan")
        service.plans.refresh()
        served = {
            "before": before,
            "plan": service.get("/v1/plan"),
            "forecast": service.get("/v1/forecast", params={"by": "model"}),
            "usage": service.get(
                "/v1/usage", params={"metric": "cost_usd", "freq": "1d", "by": "model"}
            ),
            "report": service.get("/report"),
            "healthz": service.call("GET", "/healthz"),
        }
    return {"cli": cli, "served": served}


def test_before_the_first_plan_reads_are_503_with_retry_after(compared: dict[str, Any]) -> None:
    before = compared["served"]["before"]
    assert before.status_code == 503
    assert int(before.headers["Retry-After"]) > 0
    assert "first plan" in before.json()["error"]


def test_plan_serves_what_budget_headroom_and_spikes_print(compared: dict[str, Any]) -> None:
    cli, plan = compared["cli"], compared["served"]["plan"].json()
    # The seed's calls stop inside the 23:00 hour: it is forecast, not judged.
    assert plan["as_of"] == cli["budget"]["as_of"] == "2025-03-07T23:00:00Z"
    assert plan["budgets"] == cli["budget"]
    assert {k: v for k, v in plan["headroom"].items() if k != "available"} == cli["headroom"]
    assert plan["spikes"] == cli["spikes"]
    assert plan["computed_at"].endswith("Z")
    assert [b["name"] for b in plan["budgets"]["budgets"]] == ["month", "sonnet day"]


def test_usage_serves_the_rows_of_tokenplan_usage(compared: dict[str, Any]) -> None:
    served = compared["served"]["usage"].json()
    assert served["rows"] == compared["cli"]["usage"]
    assert served["rows"][0].keys() == {"series", "timestamp", "cost_usd"}
    assert {r["series"] for r in served["rows"]} == {"claude-haiku-4-5", "claude-sonnet-4-5"}


def test_forecast_rows_follow_the_forecast_contract(compared: dict[str, Any]) -> None:
    got = compared["served"]["forecast"].json()
    rows = got["rows"]
    assert got["as_of"] == "2025-03-07T23:00:00Z"
    assert got["metric"] == "total_tokens"
    assert list(rows[0]) == ["series", "timestamp", "mean", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert rows[0]["series"] == "total"
    assert rows[0]["timestamp"] == "2025-03-07T23:00:00Z"
    assert sum(r["series"] == "total" for r in rows) == 24
    assert {r["series"] for r in rows} == {"total", "claude-haiku-4-5", "claude-sonnet-4-5"}
    for r in rows:
        assert 0 <= r["lo_95"] <= r["lo_80"] <= r["mean"] <= r["hi_80"] <= r["hi_95"]


def test_report_and_healthz(compared: dict[str, Any]) -> None:
    report = compared["served"]["report"]
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "<html" in report.text
    assert "claude-sonnet-4-5" in report.text
    health = compared["served"]["healthz"].json()
    assert health["status"] == "ok"
    assert health["plan"]["as_of"] == "2025-03-07T23:00:00Z"


def test_ingest_is_idempotent_and_all_or_nothing(tmp_path: Path) -> None:
    with running(tmp_path / "s.duckdb") as service:
        first = service.post([event_json(i) for i in range(3)])
        assert first.status_code == 200
        assert first.json() == {"accepted": 3, "duplicates": 0}
        again = service.post([event_json(i) for i in range(4)])
        assert again.json() == {"accepted": 1, "duplicates": 3}
        bad = service.post([event_json(10), event_json(11), event_json(12, output_tokens=-5)])
        assert bad.status_code == 422
        assert bad.json() == {
            "error": "item 2, field 'output_tokens': -5 is negative; counts must be >= 0.",
            "index": 2,
            "field": "output_tokens",
        }
        half = service.post([event_json(13, input_tokens=1.5)])
        # The number as it was sent, not Python's Decimal('1.5').
        assert half.json()["error"].startswith("item 0, field 'input_tokens': 1.5 is not a whole")
        assert service.rows() == 4


def test_posted_events_are_priced_like_imports(tmp_path: Path) -> None:
    from tokenplan.pricing import PriceBook

    with running(tmp_path / "s.duckdb", prices=PriceBook()) as service:
        service.post([event_json(0, ts="2025-06-01T00:00:00Z")])
        cost = service.get("/v1/usage", params={"metric": "cost_usd", "freq": "1d"}).json()
    # claude-sonnet-4-5 list prices: 1000 input tokens at $3/M, 200 output at $15/M.
    assert cost["rows"] == [
        {"series": "total", "timestamp": "2025-06-01T00:00:00Z", "cost_usd": "0.006"}
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token-at-all"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ],
)
def test_every_route_but_healthz_needs_a_token(tmp_path: Path, headers: dict[str, str]) -> None:
    with running(tmp_path / "s.duckdb") as service:
        for method, url in [
            ("POST", "/v1/events"),
            ("GET", "/v1/usage"),
            ("GET", "/v1/forecast"),
            ("GET", "/v1/plan"),
            ("GET", "/report"),
            ("GET", "/metrics"),
        ]:
            response = service.call(method, url, headers=headers, content=b"[]")
            assert response.status_code == 401, url
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in response.json()["error"]
        assert service.rows() == 0
        assert service.call("GET", "/healthz").status_code == 200
        assert service.call("GET", "/docs").status_code == 200
        schemes = service.call("GET", "/openapi.json").json()["components"]["securitySchemes"]
        assert schemes["HTTPBearer"]["scheme"] == "bearer"


def test_metrics_exposes_the_registry_passed_in(tmp_path: Path) -> None:
    with running(tmp_path / "s.duckdb") as service:
        Gauge("tokenplan_test_gauge", "A gauge of the test.", registry=service.registry).set(7)
        response = service.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "tokenplan_test_gauge 7.0" in response.text


@pytest.mark.parametrize(
    ("url", "params", "status", "problem"),
    [
        ("/v1/usage", {"metric": "tokens"}, 422, "metric 'tokens' is not known"),
        ("/v1/usage", {"by": "colour"}, 422, "cannot split by colour"),
        ("/v1/usage", {"freq": "fortnightly"}, 422, "fortnightly"),
        ("/v1/usage", {"since": "last tuesday"}, 422, "since 'last tuesday' is neither"),
        ("/v1/usage", {"until": "-3d"}, 422, "until '-3d' is neither an ISO 8601 time"),
        ("/v1/usage", {"freq": "1d", "tz": "Mars/Olympus"}, 422, "Mars/Olympus"),
        ("/v1/nothing", {}, 404, "Not Found"),
    ],
)
def test_bad_reads_are_json_errors(
    tmp_path: Path, url: str, params: dict[str, str], status: int, problem: str
) -> None:
    with running(tmp_path / "s.duckdb") as service:
        service.post([event_json(0)])
        response = service.get(url, params=params)
    assert response.status_code == status
    assert problem in response.json()["error"]


def test_usage_since_a_span_counts_back_from_the_data_end_as_the_cli_does(tmp_path: Path) -> None:
    with running(tmp_path / "s.duckdb") as service:
        service.post(
            [
                event_json(0, ts="2025-06-01T00:00:00Z"),
                event_json(1, ts="2025-06-03T12:30:00Z"),
            ]
        )
        params = {"metric": "requests", "freq": "1h"}
        span = service.get("/v1/usage", params={**params, "since": "1d"}).json()
        iso = service.get("/v1/usage", params={**params, "since": "2025-06-02T12:30:00Z"}).json()
    assert span == iso
    assert span["rows"][0]["timestamp"] == "2025-06-02T12:00:00Z"
    assert sum(int(r["requests"]) for r in span["rows"]) == 1


def test_forecast_rejects_metrics_and_splits_the_plan_lacks(tmp_path: Path) -> None:
    db = seeded_store(tmp_path / "s.duckdb")
    with running(db) as service:
        service.plans.refresh()
        assert "not one of them" in service.get("/v1/forecast?metric=requests").json()["error"]
        assert "not by 'user'" in service.get("/v1/forecast?by=user").json()["error"]


def test_an_empty_store_has_no_plan_to_serve(tmp_path: Path) -> None:
    with running(tmp_path / "s.duckdb") as service:
        service.plans.refresh()
        response = service.get("/v1/plan")
        assert response.status_code == 503
        assert "no usage yet" in response.json()["error"]
        # Events posted before the next plan: not "no usage yet", which is no longer true.
        service.post([event_json(0)])
        waiting = service.get("/v1/plan")
        assert waiting.status_code == 503
        assert "the first events have arrived" in waiting.json()["error"]
        assert int(waiting.headers["Retry-After"]) > 0


def test_plans_are_made_in_the_background_never_on_a_read(tmp_path: Path) -> None:
    calls = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(threading.current_thread().name)
        return repeat_last_day(*args, **kwargs)

    db = seeded_store(tmp_path / "s.duckdb")
    seen = threading.Event()
    with running(db) as service:
        service.plans._forecaster = counting
        service.plans._on_refresh.append(lambda snapshot: seen.set())
        service.plans.min_gap = 0.05
        service.plans.start()
        assert seen.wait(120), service.plans.last_error
        made = len(calls)
        assert made
        assert set(calls) == {"tokenplan-plans"}
        for url in ("/v1/plan", "/v1/forecast", "/report", "/v1/forecast?by=team"):
            assert service.get(url).status_code == 200
        assert len(calls) == made
        # New data: the plan is made again soon (min_gap), and judges up to the new data (the
        # hour it falls in is still filling).
        seen.clear()
        assert service.post([event_json(0, ts="2025-03-08T05:10:00Z")]).status_code == 200
        assert seen.wait(120), service.plans.last_error
        assert service.get("/v1/plan").json()["as_of"] == "2025-03-08T05:00:00Z"


def test_a_failed_refresh_keeps_the_last_plan(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = seeded_store(tmp_path / "s.duckdb")
    with running(db) as service:
        service.plans.refresh()
        first = service.get("/v1/plan").json()

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise ForecastError("the engine is out to lunch")

        service.plans._forecaster = broken
        service.plans.interval = 0.05
        service.plans.start()
        with caplog.at_level(logging.ERROR, "tokenplan.service.plans"):
            for _ in range(200):
                if service.plans.last_error:
                    break
                threading.Event().wait(0.05)
        assert "out to lunch" in (service.plans.last_error or "")
        assert service.get("/v1/plan").json()["computed_at"] == first["computed_at"]


def test_tokens_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# ops\nfile-token-0123456789\n\n")
    tokens = load_tokens(path, {"TOKENPLAN_TOKENS": "env-token-0123456789, other-token-012345"})
    assert len(tokens) == 3
    assert tokens.accepts("file-token-0123456789")
    assert tokens.accepts("other-token-012345")
    assert not tokens.accepts("file-token-012345678")
    assert not tokens.accepts(None)
    assert "0123456789" not in repr(tokens)
    assert "0123456789" not in repr(ServiceSettings(tokens=tokens))
    with pytest.raises(ConfigError, match="no API token is configured"):
        load_tokens(None, {})
    with pytest.raises(ConfigError, match="at least 16"):
        Tokens(["short"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_tokens(tmp_path / "missing", {})


def test_serve_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tokenplan", "serve", "--db", str(tmp_path / "s.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC},
    )
    assert done.returncode == 2
    assert "no API token is configured" in done.stderr
    assert not (tmp_path / "s.duckdb").exists()


def test_no_token_reaches_a_log_or_a_response(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-token-ABCDEFGHIJKLMNOP"
    bodies = []
    with caplog.at_level(logging.DEBUG), running(tmp_path / "s.duckdb") as service:
        for headers in (AUTH, {"Authorization": f"Bearer {wrong}"}):
            for body in (b"[]", b"[{", b'[{"ts": 1}]'):
                response = service.call(
                    "POST",
                    "/v1/events",
                    content=body,
                    headers={**headers, "Content-Type": "application/json"},
                )
                bodies.append(response.text + str(response.headers))
    text = caplog.text + "".join(bodies)
    assert TOKEN not in text
    assert wrong not in text
    assert PLAN.horizon_hours == 24  # the shared plan settings stay small
