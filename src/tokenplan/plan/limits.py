"""Provider rate limits and Azure PTU sizing as editable TOML data."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Any

from tokenplan.config_file import read_toml, refuse_unknown, tables
from tokenplan.errors import ConfigError
from tokenplan.events import ObservedLimit

__all__ = [
    "LIMIT_KINDS",
    "LimitsConfig",
    "PTUSizing",
    "RateLimit",
    "limits_from_observed",
    "load_limits",
    "ptu_units",
    "resolve_limits",
    "with_observed",
]

# Per-minute limit kinds and the usage metric each one counts.
LIMIT_KINDS: dict[str, str] = {
    "rpm": "requests",
    "itpm": "input_tokens",
    "otpm": "output_tokens",
    "tpm": "total_tokens",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """One provider tier's per-minute limits for a family of models."""

    provider: str
    family: str
    models: tuple[str, ...]
    tier: str
    rank: int
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    tpm: int | None = None
    cache_reads_count: bool = False

    def matches(self, model: str) -> bool:
        """Whether ``model`` falls under this family's glob patterns, also when named
        ``<provider>/<model>`` for this limit's provider (as LiteLLM and relays name it: the
        calls still count against the account's limits)."""
        vendor, slash, rest = model.partition("/")
        names = (
            (model, rest)
            if slash and rest and vendor.lower() == self.provider.lower()
            else (model,)
        )
        return any(fnmatchcase(name, pattern) for name in names for pattern in self.models)

    def values(self) -> dict[str, int]:
        """The limits this tier enforces, by kind (``rpm``, ``itpm``, ...)."""
        return {k: v for k in LIMIT_KINDS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class PTUSizing:
    """Azure provisioned-throughput sizing constants of one model and deployment type."""

    model: str
    models: tuple[str, ...]
    deployment: str
    input_tpm_per_ptu: int
    output_ratio: float
    minimum: int
    increment: int

    def matches(self, model: str) -> bool:
        """Whether ``model`` falls under this entry's glob patterns."""
        return any(fnmatchcase(model, pattern) for pattern in self.models)

    def units(self, input_tpm: float, output_tpm: float) -> int:
        """PTUs needed for a peak of ``input_tpm`` uncached input and ``output_tpm`` output."""
        return ptu_units(
            input_tpm,
            output_tpm,
            input_tpm_per_ptu=self.input_tpm_per_ptu,
            output_ratio=self.output_ratio,
            minimum=self.minimum,
            increment=self.increment,
        )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """All rate limits, PTU sizings and the tier currently held per provider."""

    rate_limits: tuple[RateLimit, ...] = ()
    ptu: tuple[PTUSizing, ...] = ()
    current_tier: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def tiers(self, provider: str, family: str) -> list[RateLimit]:
        """Every tier of one family, smallest first."""
        found = [r for r in self.rate_limits if r.provider == provider and r.family == family]
        return sorted(found, key=lambda r: r.rank)

    def families(self) -> list[tuple[str, str]]:
        """Distinct ``(provider, family)`` pairs in file order."""
        return list(dict.fromkeys((r.provider, r.family) for r in self.rate_limits))

    def unlimited(self, models: Sequence[str]) -> list[str]:
        """The ``models`` no configured rate limit matches, so no headroom is computed for them."""
        return [m for m in models if not any(r.matches(m) for r in self.rate_limits)]


def ptu_units(
    input_tpm: float,
    output_tpm: float,
    *,
    input_tpm_per_ptu: float,
    output_ratio: float,
    minimum: int,
    increment: int,
) -> int:
    """ceil((input + output × ratio) / per-PTU), rounded up to ``minimum`` + k × ``increment``."""
    if input_tpm_per_ptu <= 0 or increment <= 0 or minimum < 0:
        raise ConfigError("PTU sizing needs input_tpm_per_ptu > 0, increment > 0, minimum >= 0.")
    raw = math.ceil((max(input_tpm, 0.0) + max(output_tpm, 0.0) * output_ratio) / input_tpm_per_ptu)
    if raw <= minimum:
        return minimum
    return minimum + math.ceil((raw - minimum) / increment) * increment


def resolve_limits(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    observed: Sequence[ObservedLimit] = (),
) -> LimitsConfig:
    """The limits every command and the report use, with ``.source`` naming where they came from.

    ``path`` first, then ``TOKENPLAN_LIMITS`` in ``env``, then the dated example shipped with
    tokenplan (its ``source`` says so, so no output can pass it off as the user's limits).
    Limits ``observed`` in provider headers cover the models a user's file does not; without a
    user's file they replace the shipped example's rate limits (the account's real tier wins).
    """
    chosen = path if path is not None else (env or {}).get("TOKENPLAN_LIMITS") or None
    try:
        config = load_limits(chosen)
    except ConfigError as exc:
        if path is None and chosen is not None:
            # Set long ago in a shell profile, the variable is easy to forget: name it.
            raise ConfigError(f"{str(exc).rstrip('.')} (the path is TOKENPLAN_LIMITS's).") from None
        raise
    if not observed:
        return config
    if chosen is None:
        config = LimitsConfig((), config.ptu, {}, "")
    return with_observed(config, observed)


# Header kinds → limit kinds. Anthropic's "tokens" is the most restrictive of its input and
# output limits, so it is used only when those are absent.
_OBSERVED_KINDS = {"requests": "rpm", "input_tokens": "itpm", "output_tokens": "otpm"}


def limits_from_observed(observed: Sequence[ObservedLimit]) -> LimitsConfig:
    """One ``observed`` tier per provider and model from the latest rate-limit headers.

    Per-key observations of one model are combined by taking the largest limit (keys of one
    organization share its tier; a smaller one is a key-level cap).
    """
    by_model: dict[tuple[str, str], dict[str, int]] = {}
    for lim in observed:
        if lim.limit is None or lim.limit <= 0:
            continue
        kinds = by_model.setdefault((lim.provider, lim.model), {})
        kind = _OBSERVED_KINDS.get(lim.kind, "tpm" if lim.kind == "tokens" else "")
        if kind:
            kinds[kind] = max(kinds.get(kind, 0), lim.limit)
    limits = []
    for (provider, model), kinds in by_model.items():
        if "itpm" in kinds or "otpm" in kinds:
            kinds.pop("tpm", None)
        if kinds:
            limits.append(
                RateLimit(
                    provider=provider,
                    family=model,
                    models=(model,),
                    tier="observed",
                    rank=0,
                    rpm=kinds.get("rpm"),
                    itpm=kinds.get("itpm"),
                    otpm=kinds.get("otpm"),
                    tpm=kinds.get("tpm"),
                )
            )
    newest = max((lim.observed_at for lim in observed), default=None)
    source = f"rate-limit headers observed up to {newest:%Y-%m-%d %H:%M}Z" if newest else ""
    return LimitsConfig(tuple(limits), (), {}, source)


def with_observed(config: LimitsConfig, observed: Sequence[ObservedLimit]) -> LimitsConfig:
    """``config`` plus observed limits for the models no limit in ``config`` matches."""
    seen = limits_from_observed(observed)
    extra = tuple(r for r in seen.rate_limits if config.unlimited([r.models[0]]))
    if not extra:
        return config
    source = " + ".join(s for s in (config.source, seen.source) if s)
    return LimitsConfig(config.rate_limits + extra, config.ptu, dict(config.current_tier), source)


def load_limits(path: str | Path | None = None) -> LimitsConfig:
    """Read a limits TOML file; ``None`` reads the dated example shipped with tokenplan."""
    if path is None:
        text = resources.files("tokenplan.plan").joinpath("limits.example.toml").read_text("utf-8")
        source = "limits.example.toml (shipped example)"
        data = tomllib.loads(text)
    else:
        source = str(path)
        data = read_toml(path, "limits", parse_float=float)
    refuse_unknown(data, ("rate_limit", "ptu", "current_tier"), source)
    rate_limits = tuple(
        _rate_limit(item, source, i) for i, item in enumerate(tables(data, "rate_limit", source), 1)
    )
    ptu = tuple(_ptu(item, source, i) for i, item in enumerate(tables(data, "ptu", source), 1))
    current = data.get("current_tier", {})
    if not isinstance(current, dict):
        raise ConfigError(f"{source}: [current_tier] must map provider names to tier names.")
    return LimitsConfig(rate_limits, ptu, {str(k): str(v) for k, v in current.items()}, source)


_KIND_NAMES = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _need(item: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in item:
        raise ConfigError(f"{where}: field '{key}' is missing; add it.")
    value = item[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise ConfigError(f"{where}: field '{key}' must be {_KIND_NAMES[kind]}, not {value!r}.")
    return value


def _patterns(item: dict[str, Any], default: str, where: str) -> tuple[str, ...]:
    models = item.get("models", [default])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{where}: field 'models' must be a list of glob patterns.")
    return tuple(models)


_RATE_LIMIT_KEYS = (
    "provider",
    "family",
    "models",
    "tier",
    "rank",
    "cache_reads_count",
    *LIMIT_KINDS,
)
_PTU_KEYS = (
    "model",
    "models",
    "deployment",
    "input_tpm_per_ptu",
    "output_ratio",
    "minimum",
    "increment",
)


def _rate_limit(item: dict[str, Any], source: str, index: int) -> RateLimit:
    where = f"{source}, [[rate_limit]] #{index}"
    refuse_unknown(item, _RATE_LIMIT_KEYS, where)
    values: dict[str, int | None] = {}
    for kind in LIMIT_KINDS:
        value = item.get(kind)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value <= 0
        ):
            raise ConfigError(f"{where}: field '{kind}' must be a positive integer, not {value!r}.")
        values[kind] = value
    if not any(values.values()):
        raise ConfigError(f"{where}: give at least one of rpm, itpm, otpm or tpm.")
    family = _need(item, "family", str, where)
    return RateLimit(
        provider=_need(item, "provider", str, where),
        family=family,
        models=_patterns(item, family, where),
        tier=_need(item, "tier", str, where),
        rank=_need(item, "rank", int, where) if "rank" in item else 0,
        cache_reads_count=(
            _need(item, "cache_reads_count", bool, where) if "cache_reads_count" in item else False
        ),
        **values,
    )


def _ptu(item: dict[str, Any], source: str, index: int) -> PTUSizing:
    where = f"{source}, [[ptu]] #{index}"
    refuse_unknown(item, _PTU_KEYS, where)
    model = _need(item, "model", str, where)
    per_ptu = _need(item, "input_tpm_per_ptu", int, where)
    if per_ptu <= 0:
        raise ConfigError(f"{where}: field 'input_tpm_per_ptu' must be positive.")
    return PTUSizing(
        model=model,
        models=_patterns(item, model, where),
        deployment=_need(item, "deployment", str, where) if "deployment" in item else "global",
        input_tpm_per_ptu=per_ptu,
        output_ratio=_need(item, "output_ratio", float, where),
        minimum=_need(item, "minimum", int, where),
        increment=_need(item, "increment", int, where),
    )
