"""Config files of the wrong shape: a misspelt key, a number where a table belongs, a value of
the wrong type. Each is one `ConfigError` naming the file, the table and the key, never an
ignored key whose default is used silently, and never a crash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenplan.errors import ConfigError
from tokenplan.plan.budgets import load_budgets
from tokenplan.plan.limits import load_limits
from tokenplan.pricing.overrides import load_overrides
from tokenplan.service.alerts_config import load_alerts

BUDGET = '[[budget]]\nname = "b"\namount = 100\n'
LIMIT = '[[rate_limit]]\nprovider = "p"\nfamily = "f"\ntier = "t"\nrpm = 100\n'
PTU = (
    '[[ptu]]\nmodel = "m"\ninput_tpm_per_ptu = 5\noutput_ratio = 4.0\nminimum = 1\nincrement = 1\n'
)
PRICE = '[[prices]]\nmodel = "m"\ninput = 1\noutput = 2\n'
WEBHOOK = '[[webhook]]\nname = "w"\nkind = "slack"\nurl = "https://hooks.example/x"\n'

Loader = Callable[[Path], Any]
LOADERS: dict[str, Loader] = {
    "budgets": load_budgets,
    "limits": load_limits,
    "prices": load_overrides,
    "alerts": lambda path: load_alerts(path, env={}),
}


def _load(tmp_path: Path, kind: str, text: str) -> Any:
    path = tmp_path / f"{kind}.toml"
    path.write_text(text)
    return LOADERS[kind](path)


@pytest.mark.parametrize(
    ("kind", "text", "needle"),
    [
        # A typo that a default would have hidden: alerts at 80% instead of the 50% asked for.
        ("budgets", BUDGET + "threshold = [0.5]\n", "[[budget]] #1 ('b'): unknown key 'threshold'"),
        ("budgets", BUDGET.replace("[[budget]]", "[[budgets]]"), "unknown key 'budgets'"),
        ("budgets", '[fx]\ncurency = "EUR"\n' + BUDGET, "[fx]: unknown key 'curency'"),
        ("limits", LIMIT + "itmp = 5\n", "[[rate_limit]] #1: unknown key 'itmp'"),
        ("limits", LIMIT.replace("[[rate_limit]]", "[[rate_limits]]"), "unknown key 'rate_limits'"),
        ("limits", PTU + "minimun = 2\n", "[[ptu]] #1: unknown key 'minimun'"),
        ("prices", PRICE + "ouput = 2\n", "prices[0] (model 'm'): unknown key 'ouput'"),
        (
            "alerts",
            '[alerts]\nrepeat_afer = "1h"\n' + WEBHOOK,
            "[alerts]: unknown key 'repeat_afer'",
        ),
        ("alerts", WEBHOOK + 'min_severty = "critical"\n', "unknown key 'min_severty'"),
    ],
)
def test_a_misspelt_key_is_refused_with_the_key_it_meant(
    tmp_path: Path, kind: str, text: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, kind, text)
    message = str(info.value)
    assert str(tmp_path / f"{kind}.toml") in message
    assert needle in message
    assert "did you mean" in message


def test_a_key_near_none_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "budgets", BUDGET + "limit_usd = 5\n")
    message = str(info.value)
    assert "unknown key 'limit_usd'" in message
    assert "did you mean" not in message
    assert "known here: amount, currency, match, name, period, scope, thresholds, tz." in message


@pytest.mark.parametrize(
    ("kind", "text", "needle"),
    [
        ("budgets", "budget = [1]\n", "[[budget]] #1 must be a table, not 1"),
        ("budgets", "budget = 5\n", "key 'budget': use [[budget]] tables"),
        ("budgets", "fx = 3\n" + BUDGET, "[fx] must be a table, not 3"),
        ("limits", "rate_limit = [1]\n", "[[rate_limit]] #1 must be a table"),
        ("limits", "rate_limit = 5\n", "key 'rate_limit': use [[rate_limit]] tables"),
        ("limits", "ptu = ['x']\n", "[[ptu]] #1 must be a table"),
        ("limits", LIMIT + 'rank = "first"\n', "field 'rank' must be a whole number, not 'first'"),
        ("limits", LIMIT + "rank = nan\n", "field 'rank' must be a whole number"),
        (
            "limits",
            LIMIT + 'cache_reads_count = "no"\n',
            "'cache_reads_count' must be true or false",
        ),
        ("limits", PTU + "deployment = 5\n", "field 'deployment' must be text, not 5"),
    ],
)
def test_a_value_of_the_wrong_shape_is_named(
    tmp_path: Path, kind: str, text: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, kind, text)
    assert needle in str(info.value)


def test_the_shipped_config_files_load() -> None:
    data = resources.files("tokenplan.data") / "servegen_language"
    budgets = load_budgets(Path(str(data / "budgets.toml")))
    assert len(budgets.budgets) >= 1
    assert load_limits(Path(str(data / "limits.toml"))).rate_limits
    assert load_limits(None).rate_limits  # limits.example.toml
    assert load_overrides(Path(str(data / "prices.toml"))).entries
    example = resources.files("tokenplan.data") / "prices.example.toml"
    assert load_overrides(Path(str(example))).entries


_SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
    st.datetimes(timezones=st.just(UTC), min_value=datetime(1, 1, 2)),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("abcz_", min_size=1, max_size=4), inner, max_size=2)
    ),
    max_leaves=5,
)


def _toml(value: Any) -> str:
    """``value`` as a TOML inline value (the standard library reads TOML but cannot write it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"


_TEMPLATES = {"budgets": BUDGET, "limits": LIMIT + PTU, "prices": PRICE, "alerts": WEBHOOK}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(sorted(_TEMPLATES)),
    line=st.integers(0, 20),
    value=_VALUES,
)
def test_any_value_at_any_key_loads_or_is_refused_as_config(
    tmp_path: Path, kind: str, line: int, value: Any
) -> None:
    """Each key of a valid file, set to any TOML value: it loads, or a ConfigError says why."""
    lines = _TEMPLATES[kind].splitlines()
    keyed = [i for i, text in enumerate(lines) if " = " in text]
    at = keyed[line % len(keyed)]
    key = lines[at].split(" = ")[0]
    lines[at] = f"{key} = {_toml(value)}"
    try:
        _load(tmp_path, kind, "\n".join(lines) + "\n")
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert str(tmp_path) in message
