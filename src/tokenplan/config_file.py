"""`read_toml`: one reader for the config files (prices, budgets, limits), so each fails alike.

Every way a file can be unreadable becomes one `ConfigError` naming the file and, where there
is one, the line: missing, a directory, no permission, not UTF-8, not TOML, nested deeper than
any config needs, or too large to be a config file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenplan.errors import ConfigError

# A real config file is a few kilobytes; a gigabyte "config" is a mistake, not a price list.
MAX_BYTES = 16 << 20


def read_toml(
    path: str | os.PathLike[str], what: str, *, parse_float: Callable[[str], Any] = Decimal
) -> dict[str, Any]:
    """The parsed TOML of the ``what`` file (e.g. "budgets") at ``path``; numbers exact."""
    name = os.fspath(path)
    data = _read_bytes(Path(name), name, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"the {what} file {name}, line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; "
            "save the file as UTF-8."
        ) from None
    try:
        return tomllib.loads(text, parse_float=parse_float)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the {what} file {name} is not valid TOML: {exc}.") from None
    except RecursionError:
        raise ConfigError(
            f"the {what} file {name} nests arrays or tables too deeply to be a config file."
        ) from None


def _read_bytes(path: Path, name: str, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ConfigError(f"the {what} file {name} is a directory; give the file inside it.")
        if size > MAX_BYTES:
            raise ConfigError(
                f"the {what} file {name} is {size:,} bytes; a config file is at most {MAX_BYTES:,}."
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"the {what} file {name} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {name}: {exc.strerror}.") from None
