"""What each webhook was last told about each alert, kept in a small JSON file across restarts.

A JSON file rather than a store table: `tokenplan alert` runs from cron against a store it only
reads (and the service's store is busy with ingest), and the state is a few lines a person can
read or delete. It is written atomically (temporary file, fsync, rename, fsync of the folder),
and a cycle holds an exclusive lock on ``<file>.lock`` so two senders never interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tokenplan.errors import ConfigError

__all__ = ["AlertState", "Entry"]

VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """The last message one webhook got about one alert (enough to send its "resolved")."""

    kind: str
    severity: str
    subject: str
    message: str
    value: float | None
    first_sent: str
    last_sent: str

    @property
    def first_sent_at(self) -> datetime:
        """When the condition was first sent (UTC)."""
        return datetime.fromisoformat(self.first_sent)

    @property
    def last_sent_at(self) -> datetime:
        """When it was last sent (UTC)."""
        return datetime.fromisoformat(self.last_sent)


class AlertState:
    """Per webhook, per alert key: the last `Entry` sent. ``path=None`` keeps it in memory."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._targets: dict[str, dict[str, Entry]] = {}
        self.load()

    def entries(self, target: str) -> dict[str, Entry]:
        """The entries of one webhook (a copy: change them with `put` and `drop`)."""
        return dict(self._targets.get(target, {}))

    def put(self, target: str, key: str, entry: Entry) -> None:
        """Record what ``target`` was told about ``key``."""
        self._targets.setdefault(target, {})[key] = entry

    def drop(self, target: str, key: str) -> None:
        """Forget ``key`` for ``target`` (resolved, or its period is over)."""
        self._targets.get(target, {}).pop(key, None)

    @contextlib.contextmanager
    def locked(self) -> Iterator[AlertState]:
        """Hold the file's lock, with the state freshly read, for one send cycle."""
        if self.path is None:
            yield self
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self.load()
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self) -> None:
        """Read the file (an absent file is an empty state)."""
        if self.path is None:
            return
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._targets = {}
            return
        except OSError as exc:
            raise ConfigError(
                f"cannot read the alert state file {self.path}: {exc.strerror}."
            ) from None
        self._targets = _parse(raw, self.path)

    def save(self) -> None:
        """Write the file atomically: a crash leaves the old state or the new, never half."""
        if self.path is None:
            return
        data = {
            "version": VERSION,
            "targets": {
                t: {k: asdict(e) for k, e in sorted(entries.items())}
                for t, entries in sorted(self._targets.items())
                if entries
            },
        }
        text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False)
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _parse(raw: bytes, path: Path) -> dict[str, dict[str, Entry]]:
    fix = "delete it to start afresh (alerts still on will then be sent once more)"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"the alert state file {path} is not valid JSON; {fix}.") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ConfigError(f"the alert state file {path} is not version {VERSION}; {fix}.")
    out: dict[str, dict[str, Entry]] = {}
    try:
        for target, entries in dict(data.get("targets", {})).items():
            out[str(target)] = {str(k): _entry(v) for k, v in dict(entries).items()}
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"the alert state file {path} has a bad entry ({exc}); {fix}.") from None
    return out


def _entry(item: Any) -> Entry:
    value = item["value"]
    number = None if value is None else float(value)
    datetime.fromisoformat(item["first_sent"])
    datetime.fromisoformat(item["last_sent"])
    return Entry(
        kind=str(item["kind"]),
        severity=str(item["severity"]),
        subject=str(item["subject"]),
        message=str(item["message"]),
        value=number if number is None or math.isfinite(number) else None,
        first_sent=str(item["first_sent"]),
        last_sent=str(item["last_sent"]),
    )
