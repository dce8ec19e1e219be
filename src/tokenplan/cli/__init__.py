"""Command-line interface: a thin layer over the library (one catch turns errors into exit 2)."""

from __future__ import annotations

import os
import sys

import typer

from tokenplan.cli import (  # noqa: F401 (registers commands)
    alert_cmd,
    demo_cmd,
    drain_cmd,
    export_cmd,
    forecast_cmd,
    import_cmd,
    plan_cmd,
    prices_cmd,
    pull_cmd,
    reconcile_cmd,
    report_cmd,
    reprice_cmd,
    serve_cmd,
    usage_cmd,
)
from tokenplan.cli.app import app, err_console
from tokenplan.cli.output import visible
from tokenplan.errors import TokenplanError

__all__ = ["app", "main"]

DEBUG_FLAG = "--debug"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure prints one line and exits 2 (130 on Ctrl-C), never a traceback.

    ``--debug`` anywhere before ``--`` (or ``TOKENPLAN_DEBUG=1``) lets unexpected errors raise
    with their traceback instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug, args = _take_debug(args)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="tokenplan", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(0)
        # Usage mistakes too get one line (click would print usage, a hint and the error).
        _fail(f"{getattr(exc, 'format_message', exc.__str__)()} (see --help)")
    except (typer.Abort, KeyboardInterrupt):
        # Click turns Ctrl-C into Abort; open transactions have rolled back on the way out.
        sys.exit(130)
    except TokenplanError as exc:
        _fail(str(exc))
    except BrokenPipeError:
        # `tokenplan usage | head`: the reader left; say nothing, and keep Python's flush at
        # exit from raising again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (
        FileNotFoundError,
        FileExistsError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    ) as exc:
        _fail(f"{exc.strerror}: {exc.filename}")
    except Exception as exc:  # the guard: anything unforeseen is still one line
        if debug:
            raise
        _fail(
            f"unexpected {type(exc).__name__}: {exc}. This is a bug in tokenplan; rerun with "
            f"{DEBUG_FLAG} for the traceback and report it."
        )
    sys.exit(code if isinstance(code, int) else 0)


def _take_debug(args: list[str]) -> tuple[bool, list[str]]:
    """Remove ``--debug`` from the options (not from after ``--``); also honour the env var."""
    end = args.index("--") if "--" in args else len(args)
    debug = DEBUG_FLAG in args[:end]
    kept = [a for a in args[:end] if a != DEBUG_FLAG] + args[end:]
    return debug or os.environ.get("TOKENPLAN_DEBUG", "") not in ("", "0"), kept


def _fail(message: str) -> None:
    # One line: newlines inside a message would split it for scripts reading stderr; control
    # characters from file names or values are shown escaped so they cannot drive the terminal.
    text = visible(" ".join(message.split()))
    err_console.print(f"error: {text}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(2)
