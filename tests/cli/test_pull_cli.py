"""`tokenplan pull` as a user runs it: a child process against the loopback provider API."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collect"))

from cli_process import run_cli
from provider_api import A_USAGE, KEY, ProviderApi, anthropic_usage_bucket, hours

from tokenplan.store import DuckDBStore

T0 = datetime(2025, 8, 1, tzinfo=UTC)


def test_pull_cli_stores_resumes_and_never_prints_the_key(tmp_path: Path) -> None:
    db = tmp_path / "usage.duckdb"
    with ProviderApi(page_size=10) as api:
        api.buckets[A_USAGE] = [anthropic_usage_bucket(lo, hi) for lo, hi in hours(T0, 24)]
        env = {"ANTHROPIC_ADMIN_KEY": KEY, "TOKENPLAN_ANTHROPIC_BASE_URL": api.url}
        first = run_cli(
            "pull",
            "anthropic",
            "--since",
            "2025-08-01",
            "--until",
            "2025-08-01T12:00Z",
            "--no-costs",
            "--db",
            db,
            env=env,
        )
        assert first.returncode == 0, first.stderr
        again = run_cli(
            "pull", "anthropic", "--until", "2025-08-02", "--no-costs", "--db", db, env=env
        )
        assert again.returncode == 0, again.stderr
        resumed_at = [r.query["starting_at"] for r in api.requests if "page" not in r.query]
        missing = run_cli("pull", "openai", "--since", "2025-08-01", "--db", db, env=env)
    assert "24 new, 0 already present" in first.stdout
    assert "24 new, 0 already present" in again.stdout
    assert resumed_at == [["2025-08-01T00:00:00Z"], ["2025-08-01T12:00:00Z"]]
    with DuckDBStore(db, mode="read") as store:
        assert store.connection.execute("SELECT count(*) FROM usage").fetchall() == [(48,)]
    assert missing.returncode == 2
    assert "OPENAI_ADMIN_KEY is not set" in missing.stderr
    for run in (first, again, missing):
        assert KEY not in run.stdout + run.stderr
