"""Run the real `tokenplan` CLI in a child process, on this checkout's code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

# The subprocesses run this checkout's code, not whatever tokenplan is installed.
SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_cli(
    *args: str | Path, timeout: float = 180, env: dict[str, str] | None = None, **options: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m tokenplan ARGS`` with a wide terminal and a clean environment."""
    return subprocess.run(
        [sys.executable, "-m", "tokenplan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin", "PYTHONPATH": SRC, **(env or {})},
        **options,
    )
