"""Bearer tokens: who may post events and read plans.

A presented token is compared with every configured one in constant time (SHA-256 digests
compared with `hmac.compare_digest`, so neither a token's content nor its length shows in
the timing). Tokens are never logged, repr'd or echoed in a response.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from tokenplan.errors import ConfigError, TokenplanError

__all__ = ["MIN_TOKEN_CHARS", "Tokens", "Unauthorized"]

# Shorter tokens can be guessed; 16 random characters are ~95 bits from a base64 alphabet.
MIN_TOKEN_CHARS = 16


class Unauthorized(TokenplanError):
    """The request has no bearer token, or not one of the configured tokens."""

    status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="tokenplan"'}  # noqa: RUF012 (read only)


class Tokens:
    """The accepted bearer tokens, kept only as digests."""

    __slots__ = ("_digests",)

    def __init__(self, tokens: Iterable[str]) -> None:
        digests = []
        for i, token in enumerate(tokens, 1):
            if len(token) < MIN_TOKEN_CHARS:
                raise ConfigError(
                    f"token #{i} is {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
                    "random ones (`python -c 'import secrets; print(secrets.token_urlsafe())'`)."
                )
            if not token.isprintable() or any(c.isspace() for c in token):
                raise ConfigError(
                    f"token #{i} holds spaces or control characters; a bearer token cannot."
                )
            digests.append(_digest(token))
        if not digests:
            raise ConfigError(
                "no API token is configured, so nobody could post events: give --token-file "
                "FILE (one token a line) or set TOKENPLAN_TOKENS (comma-separated)."
            )
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"Tokens(<{len(self._digests)} hidden>)"

    def accepts(self, presented: str | None) -> bool:
        """True when ``presented`` is one of the tokens (every one is compared, always)."""
        if presented is None:
            return False
        candidate = _digest(presented)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(digest, candidate)
        return found

    def check(self, presented: str | None) -> None:
        """Raise `Unauthorized` unless ``presented`` is one of the tokens."""
        if not self.accepts(presented):
            what = "no bearer token" if presented is None else "a bearer token that is not valid"
            raise Unauthorized(f"the request carries {what}; send `Authorization: Bearer <token>`.")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
