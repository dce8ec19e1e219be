"""One reader for the config files (prices, budgets, limits, alerts), so each fails alike.

`read_toml`: every way a file can be unreadable becomes one `ConfigError` naming the file and,
where there is one, the line: missing, a directory, no permission, not UTF-8, not TOML, nested
deeper than any config needs, or too large to be a config file.

`table`, `tables` and `refuse_unknown`: every way a readable file can have the wrong shape (a
number where a table belongs, a misspelt key) becomes one `ConfigError` naming the file, the
table and the key. A misspelt key would otherwise be ignored and its default used silently: a
budget's `threshold = [0.5]` would alert at the default 80% instead.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Collection, Mapping
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


def table(value: Any, where: str) -> dict[str, Any]:
    """``value`` when it is a TOML table; else a `ConfigError` saying what ``where`` holds."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table, not {value!r}.")
    return value


def tables(data: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """The ``[[key]]`` entries of ``data`` (none when absent), each checked to be a table."""
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}, key '{key}': use [[{key}]] tables, not {value!r}.")
    return [table(item, f"{where}, [[{key}]] #{i}") for i, item in enumerate(value, 1)]


def refuse_unknown(found: Mapping[str, Any], allowed: Collection[str], where: str) -> None:
    """A `ConfigError` for the first key of ``found`` not in ``allowed``, with the nearest."""
    unknown = sorted(set(found) - set(allowed))
    if not unknown:
        return
    near = difflib.get_close_matches(unknown[0], list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean '{near[0]}'? " if near else ""
    raise ConfigError(
        f"{where}: unknown key '{unknown[0]}'; {hint}known here: {', '.join(sorted(allowed))}."
    )
