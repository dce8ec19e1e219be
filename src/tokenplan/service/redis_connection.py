"""Connecting to Redis: one client per URL, errors wrapped once, passwords never shown."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tokenplan.errors import InvalidInput, StoreError

log = logging.getLogger(__name__)

SCHEMES = ("redis", "rediss", "unix")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable Redis URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def connect(url: str, *, timeout_s: float = 10.0) -> redis.Redis:
    """A client of the Redis server at ``url``, checked with a PING; it never retries by itself."""
    if not url or urlsplit(url).scheme not in SCHEMES:
        raise InvalidInput(
            f"--redis: {redact(url)!r} is not a Redis URL; give one such as "
            "redis://127.0.0.1:6379/0."
        )
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # Never resend on its own: a batch script whose reply was lost may have run, and
            # a silent resend would count its events without request ids twice. The caller's
            # retry is told apart by request_id and reported.
            retry=Retry(NoBackoff(), 0),
        )
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise StoreError(f"cannot reach Redis at {redact(url)}: {exc}") from exc
    return client


def check_persistence(client: redis.Redis, where: str) -> str | None:
    """Why acknowledged events could be lost if this server crashed, or None if they cannot.

    Only ``appendonly yes`` with ``appendfsync always`` survives a crash of the server's host
    with nothing lost; ``everysec`` may lose the last second of writes. Servers that refuse
    CONFIG (managed services) are assumed to be configured by their operator.
    """
    try:
        config = client.config_get("append*")
    except redis.ResponseError:
        return None
    except redis.RedisError as exc:
        raise StoreError(f"cannot read the configuration of Redis at {where}: {exc}") from exc
    decoded = {_text(k): _text(v) for k, v in config.items()}
    if decoded.get("appendonly") != "yes":
        problem = (
            f"Redis at {where} runs without the append-only file (appendonly no): events "
            "acknowledged since its last snapshot are lost if it crashes; set "
            "appendonly yes and appendfsync always."
        )
    elif decoded.get("appendfsync") == "everysec":
        problem = (
            f"Redis at {where} fsyncs its append-only file every second: a crash of its host "
            "can lose up to the last second of acknowledged events; set appendfsync always "
            "to lose none."
        )
    elif decoded.get("appendfsync") == "no":
        problem = (
            f"Redis at {where} leaves fsync to the OS (appendfsync no): a crash of its host can "
            "lose acknowledged events; set appendfsync always."
        )
    else:
        return None
    log.warning("%s", problem)
    return problem


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
