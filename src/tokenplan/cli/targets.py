"""Output paths (``--out``, ``--json``) checked before any work, so a bad one costs nothing.

A report takes minutes on a big store; finding only at the end that ``--out`` names a folder,
or a path under a file, or a place that cannot be written, would waste them and leave nothing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tokenplan.errors import InvalidInput


def writable_file(path: Path, option: str) -> Path:
    """``path`` if a file can be written there (missing folders may be created), else why not."""
    if str(path) in ("", "."):
        raise InvalidInput(f"{option} is empty; give a file name.")
    if path.is_dir():
        raise InvalidInput(f"{option} {path} is a folder; give a file name inside it.")
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidInput(f"{option} {path}: no permission to write this file.")
    _creatable_folder(path.parent, option, path)
    return path


def writable_folder(path: Path, option: str) -> Path:
    """``path`` if it is (or can be made) a folder files can be written in, else why not."""
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{option} {path} is a file; give a folder.")
    _creatable_folder(path, option, path)
    return path


def _creatable_folder(folder: Path, option: str, target: Path) -> None:
    """Check that ``folder`` exists or can be created and written in, leaving nothing behind."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidInput(
            f"{option} {target}: {existing} is a file, not a folder; choose another path."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInput(f"{option} {target}: no permission to write in {existing}.")
    if existing == folder:
        return
    # Root passes os.access everywhere; only making the folders proves it (e.g. /proc, a
    # read-only mount). They are removed again; the command makes them when it writes.
    made = []
    try:
        for part in reversed(folder.relative_to(existing).parents[:-1]):
            made.append(existing / part)
            made[-1].mkdir()
        made.append(folder)
        folder.mkdir()
    except OSError as exc:
        raise InvalidInput(
            f"{option} {target}: cannot create the folder {made[-1]} ({exc.strerror})."
        ) from None
    finally:
        for created in reversed(made):
            with contextlib.suppress(OSError):
                created.rmdir()
