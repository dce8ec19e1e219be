"""What the service is configured with: its tokens and the limits it puts on requests."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tokenplan.errors import ConfigError
from tokenplan.service.auth import Tokens

__all__ = ["ServiceSettings", "load_tokens"]

TOKENS_ENV = "TOKENPLAN_TOKENS"
# A token file holds a few lines; anything bigger is the wrong file.
MAX_TOKEN_FILE_BYTES = 64 << 10


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    """The service's tokens and request limits (each over-limit request is a 413)."""

    tokens: Tokens = field(repr=False)
    # Bytes of request body, after gzip decompression too.
    max_body_bytes: int = 8 << 20
    # Events in one request.
    max_batch: int = 10_000
    # Characters in one text field (model, team, request_id, ...).
    max_text_chars: int = 1024
    # What a 503 tells clients to wait before asking again for a plan not yet computed.
    retry_after_seconds: int = 10
    # How far after the service's clock an event may be dated (clients' clocks drift).
    max_ahead_seconds: int = 3600

    def __post_init__(self) -> None:
        names = (
            "max_body_bytes",
            "max_batch",
            "max_text_chars",
            "retry_after_seconds",
            "max_ahead_seconds",
        )
        for name in names:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} is {getattr(self, name)}; it must be at least 1.")


def load_tokens(token_file: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Tokens:
    """The tokens of ``token_file`` (one a line, ``#`` comments) and of ``TOKENPLAN_TOKENS``.

    Refuses to give none: a service nobody may post to is a misconfiguration.
    """
    found: list[str] = []
    if token_file is not None:
        found.extend(_file_tokens(Path(token_file)))
    found.extend(t.strip() for t in env.get(TOKENS_ENV, "").split(",") if t.strip())
    return Tokens(found)


def _file_tokens(path: Path) -> list[str]:
    try:
        if path.is_dir():
            raise ConfigError(f"the token file {path} is a directory; give the file inside it.")
        if path.stat().st_size > MAX_TOKEN_FILE_BYTES:
            raise ConfigError(
                f"the token file {path} is over {MAX_TOKEN_FILE_BYTES:,} bytes; it should hold "
                "one token a line."
            )
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"the token file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the token file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}.") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
