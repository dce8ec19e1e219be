"""Rate limits observed in provider headers, as a `LimitsConfig` the headroom check reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tokenplan.events import ObservedLimit
from tokenplan.plan.limits import limits_from_observed, resolve_limits

AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _seen(
    provider: str, model: str, kind: str, limit: int, key: str | None = None
) -> ObservedLimit:
    return ObservedLimit(
        provider=provider,
        model=model,
        key_id=key,
        kind=kind,
        limit=limit,
        remaining=1,
        reset=None,
        observed_at=AT,
    )


OBSERVED = [
    _seen("anthropic", "claude-sonnet-4-5-20250929", "requests", 4000),
    _seen("anthropic", "claude-sonnet-4-5-20250929", "input_tokens", 2_000_000),
    _seen("anthropic", "claude-sonnet-4-5-20250929", "output_tokens", 400_000),
    _seen("anthropic", "claude-sonnet-4-5-20250929", "tokens", 2_400_000),
    _seen("openai", "gpt-4o-2024-08-06", "requests", 500, "key-a"),
    _seen("openai", "gpt-4o-2024-08-06", "requests", 5000, "key-b"),
    _seen("openai", "gpt-4o-2024-08-06", "tokens", 800_000, "key-b"),
]


def test_headers_become_one_observed_tier_per_model() -> None:
    config = limits_from_observed(OBSERVED)
    by_model = {r.family: r for r in config.rate_limits}
    claude = by_model["claude-sonnet-4-5-20250929"]
    # Anthropic's combined "tokens" limit is dropped where input and output limits are known.
    assert claude.values() == {"rpm": 4000, "itpm": 2_000_000, "otpm": 400_000}
    assert by_model["gpt-4o-2024-08-06"].values() == {"rpm": 5000, "tpm": 800_000}
    assert {r.tier for r in config.rate_limits} == {"observed"}
    assert "2025-06-01 12:00" in config.source


def test_a_users_file_wins_and_observed_limits_fill_the_gaps(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text(
        '[[rate_limit]]\nprovider = "openai"\nfamily = "gpt-4o"\nmodels = ["gpt-4o*"]\n'
        'tier = "tier-1"\nrpm = 500\n'
    )
    config = resolve_limits(path, env={}, observed=OBSERVED)
    families = {(r.family, r.tier) for r in config.rate_limits}
    assert families == {("gpt-4o", "tier-1"), ("claude-sonnet-4-5-20250929", "observed")}
    assert str(path) in config.source
    assert "headers" in config.source


def test_without_a_file_observed_limits_replace_the_shipped_example() -> None:
    example = resolve_limits(None, env={})
    config = resolve_limits(None, env={}, observed=OBSERVED)
    assert example.rate_limits
    assert "example" in example.source
    assert {r.tier for r in config.rate_limits} == {"observed"}
    assert "example" not in config.source
    assert config.ptu == example.ptu
    assert resolve_limits(None, env={}, observed=[]) == example
