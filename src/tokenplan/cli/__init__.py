"""Command-line interface: a thin layer over the library (one catch turns errors into exit 2)."""

from __future__ import annotations

import sys

import typer

from tokenplan.cli import (  # noqa: F401 (registers commands)
    demo_cmd,
    forecast_cmd,
    import_cmd,
    plan_cmd,
    prices_cmd,
    report_cmd,
    usage_cmd,
)
from tokenplan.cli.app import app, err_console
from tokenplan.errors import TokenplanError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user mistakes print one line and exit 2, never a traceback."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="tokenplan", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(0)
        # Usage mistakes too get one line (click would print usage, a hint and the error).
        _fail(f"{getattr(exc, 'format_message', exc.__str__)()} (see --help)")
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except TokenplanError as exc:
        _fail(str(exc))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        _fail(f"{exc.strerror}: {exc.filename}")
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    # One line: newlines inside a message would split it for scripts reading stderr.
    err_console.print(
        f"error: {' '.join(message.split())}", markup=False, highlight=False, soft_wrap=True
    )
    sys.exit(2)
