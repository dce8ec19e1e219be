"""The alerts TOML: webhooks (where alerts go) and the rules (what alerts, how often).

```toml
[alerts]
repeat_after = "4h"           # tell an unchanged condition again after this ("never": don't)
headroom_below = 0.2          # alert when the p99 busiest minute leaves < 20% of a limit
thresholds = [0.5, 0.8, 1.0]  # budget shares that alert (default: each budget's own)
state = "alerts-state.json"   # relative to this file

[[webhook]]
name = "ops"
kind = "feishu"               # slack | feishu | dingtalk | wecom | json
url_env = "FEISHU_WEBHOOK_URL"
secret_env = "FEISHU_SECRET"
min_severity = "warning"      # info | warning | critical
```

Secrets (``secret``, and ``url``, which embeds the robot's token) come from the file or from
the environment (``secret_env``, ``url_env``). Errors name the file, the entry and the key,
never a secret's value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokenplan.config_file import read_toml, refuse_unknown
from tokenplan.errors import ConfigError, InvalidInput
from tokenplan.frequency import parse_freq
from tokenplan.service.alert_state import AlertState
from tokenplan.service.alerting import SEVERITIES, AlertLoop, AlertRules
from tokenplan.service.notifier import DedupeRules, Notifier, RetryPolicy
from tokenplan.service.webhooks import FEISHU_MSG_TYPES, SIGNED_KINDS, Kind, Webhook

__all__ = ["AlertsConfig", "load_alerts", "make_alert_loop", "make_notifier"]

_ALERT_KEYS = {
    "repeat_after",
    "headroom_below",
    "thresholds",
    "material_change",
    "spikes",
    "spike_recent",
    "state",
    "max_attempts",
    "max_wait",
}
_WEBHOOK_KEYS = {"name", "kind", "url", "url_env", "secret", "secret_env", "min_severity"}
_WEBHOOK_KEYS |= {"msg_type"}
DEFAULT_STATE = "alerts-state.json"

if TYPE_CHECKING:
    import httpx

    from tokenplan.plan.budgets import BudgetsConfig
    from tokenplan.plan.limits import LimitsConfig
    from tokenplan.pricing import FxRate


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsConfig:
    """Everything one alerts file says: webhooks, alert rules, dedupe, retries, state file."""

    webhooks: tuple[Webhook, ...]
    rules: AlertRules
    dedupe: DedupeRules
    retry: RetryPolicy
    state_path: Path
    source: str


def load_alerts(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> AlertsConfig:
    """Read and check an alerts TOML file; ``env`` supplies ``*_env`` secrets (os.environ)."""
    env = os.environ if env is None else env
    name = os.fspath(path)
    data = read_toml(path, "alerts", parse_float=float)
    refuse_unknown(data, ("alerts", "webhook"), name)
    section = data.get("alerts", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{name}: [alerts] must be a table.")
    where = f"{name}, [alerts]"
    refuse_unknown(section, _ALERT_KEYS, where)
    entries = data.get("webhook", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{name}: no [[webhook]] entries; add at least one (see the example).")
    hooks = tuple(_webhook(e, f"{name}, [[webhook]] #{i}", env) for i, e in enumerate(entries, 1))
    seen: set[str] = set()
    for i, hook in enumerate(hooks, 1):
        if hook.name in seen:
            raise ConfigError(
                f"{name}, [[webhook]] #{i}: name {hook.name!r} is used twice; names must differ "
                "(the alert state is kept per name)."
            )
        seen.add(hook.name)
    state = Path(str(section.get("state", DEFAULT_STATE)))
    if not state.is_absolute():
        state = Path(name).resolve().parent / state
    return AlertsConfig(
        webhooks=hooks,
        rules=AlertRules(
            thresholds=_thresholds(section, where),
            headroom_below=_share(section, "headroom_below", 0.2, where),
            spikes=_bool(section, "spikes", True, where),
            spike_recent=_count(section, "spike_recent", 24, where),
        ),
        dedupe=DedupeRules(
            repeat_after=_duration(section, "repeat_after", "4h", where),
            material_change=_share(section, "material_change", 0.25, where),
        ),
        retry=RetryPolicy(
            max_attempts=_count(section, "max_attempts", 5, where),
            max_wait=_seconds(section, "max_wait", "2min", where),
        ),
        state_path=state,
        source=name,
    )


def make_notifier(
    config: AlertsConfig,
    *,
    client: httpx.Client,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    state_path: str | os.PathLike[str] | None = None,
) -> Notifier:
    """The `Notifier` an alerts file describes (its webhooks, dedupe, retries, state file)."""
    return Notifier(
        config.webhooks,
        AlertState(state_path or config.state_path),
        client=client,
        clock=clock,
        sleep=sleep,
        retry=config.retry,
        rules=config.dedupe,
    )


def make_alert_loop(
    config: AlertsConfig,
    *,
    client: httpx.Client,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    budgets: BudgetsConfig | None = None,
    limits: LimitsConfig | None = None,
    fx: FxRate | None = None,
) -> AlertLoop:
    """What the service's plan refresher calls after each refresh: ``loop(snapshot)``."""
    notifier = make_notifier(config, client=client, clock=clock, sleep=sleep)
    return AlertLoop(notifier, budgets=budgets, limits=limits, fx=fx, rules=config.rules)


def _webhook(item: Any, where: str, env: Mapping[str, str]) -> Webhook:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be a table with name, kind and url.")
    if isinstance(item.get("name"), str) and item["name"]:
        where = f"{where} ({item['name']!r})"
    refuse_unknown(item, _WEBHOOK_KEYS, where)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: field 'name' is missing; give each webhook a name.")
    kinds = ", ".join(k.value for k in Kind)
    try:
        kind = Kind(str(item.get("kind", "")))
    except ValueError:
        raise ConfigError(
            f"{where}: field 'kind' is {item.get('kind')!r}; use one of {kinds}."
        ) from None
    url = _secret(item, "url", where, env)
    if url is None:
        raise ConfigError(f"{where}: field 'url' is missing; give url or url_env.")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises on a port out of range)
    except ValueError:
        raise ConfigError(f"{where}: field 'url' has a port outside 0-65535.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL embeds the robot's token: say what is wrong, not what it is.
        raise ConfigError(f"{where}: field 'url' is not an http(s) URL with a host.")
    secret = _secret(item, "secret", where, env)
    if secret is not None and kind not in SIGNED_KINDS:
        raise ConfigError(
            f"{where}: kind {kind.value!r} is not signed; secret and secret_env are for "
            "feishu and dingtalk robots."
        )
    severity = str(item.get("min_severity", "warning"))
    if severity not in SEVERITIES:
        raise ConfigError(
            f"{where}: field 'min_severity' is {severity!r}; use one of {', '.join(SEVERITIES)}."
        )
    msg_type = str(item.get("msg_type", "interactive"))
    if "msg_type" in item and kind is not Kind.feishu:
        raise ConfigError(f"{where}: field 'msg_type' is for feishu webhooks only.")
    if msg_type not in FEISHU_MSG_TYPES:
        raise ConfigError(
            f"{where}: field 'msg_type' is {msg_type!r}; use {' or '.join(FEISHU_MSG_TYPES)}."
        )
    return Webhook(
        name=name.strip(),
        kind=kind,
        url=url,
        secret=secret,
        min_severity=severity,
        msg_type=msg_type,
    )


def _secret(item: Mapping[str, Any], key: str, where: str, env: Mapping[str, str]) -> str | None:
    """``key`` from the file, or from the environment variable ``key_env`` names."""
    env_key = f"{key}_env"
    if key in item and env_key in item:
        raise ConfigError(f"{where}: give {key} or {env_key}, not both.")
    if env_key in item:
        var = item[env_key]
        if not isinstance(var, str) or not var:
            raise ConfigError(f"{where}: field '{env_key}' must name an environment variable.")
        value = env.get(var, "")
        if not value.strip():
            raise ConfigError(
                f"{where}: field '{env_key}': the environment variable {var} is not set."
            )
        return value.strip()
    if key in item:
        value = item[key]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: field '{key}' must be a non-empty string.")
        return value.strip()
    return None


def _thresholds(section: Mapping[str, Any], where: str) -> tuple[float, ...] | None:
    if "thresholds" not in section:
        return None
    raw = section["thresholds"]
    bad = ConfigError(
        f"{where}: field 'thresholds' must be a list of positive shares such as [0.5, 0.8, 1.0]."
    )
    if not isinstance(raw, list) or not raw:
        raise bad
    for x in raw:
        if (
            isinstance(x, bool)
            or not isinstance(x, int | float)
            or not (math.isfinite(x) and x > 0)
        ):
            raise bad
    shares = tuple(sorted({float(x) for x in raw}))
    return shares


def _share(section: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where}: field '{key}' must be a share between 0 and 1, such as 0.2.")
    return float(value)


def _bool(section: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: field '{key}' must be true or false.")
    return value


def _count(section: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ConfigError(f"{where}: field '{key}' must be a whole number from 1 to 1000.")
    return value


def _seconds(section: Mapping[str, Any], key: str, default: str, where: str) -> float:
    span = _duration(section, key, default, where)
    if span is None:
        raise ConfigError(f"{where}: field '{key}' must be a duration such as 30s or 2min.")
    return span.total_seconds()


def _duration(section: Mapping[str, Any], key: str, default: str, where: str) -> timedelta | None:
    value = section.get(key, default)
    if isinstance(value, str) and value.strip().lower() == "never":
        return None
    try:
        if not isinstance(value, str):
            raise InvalidInput("not text")
        return timedelta(seconds=parse_freq(value).seconds)
    except InvalidInput:
        raise ConfigError(
            f"{where}: field '{key}' is {value!r}; use a duration such as 30min, 4h or 1d"
            + (', or "never".' if key == "repeat_after" else ".")
        ) from None
