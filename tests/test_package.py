"""Package surface: exports, entry points, and that every CLI command is documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

import tokenplan
from tokenplan.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_all_matches_public_names() -> None:
    public = {n for n in vars(tokenplan) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(tokenplan.__all__)
    for name in tokenplan.__all__:
        assert hasattr(tokenplan, name)


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tokenplan", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage" in out.stdout


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    command = typer.main.get_command(app)
    names = sorted(command.commands)  # type: ignore[attr-defined]
    assert "usage" in names
    for name in names:
        sub = command.commands[name]  # type: ignore[attr-defined]
        assert sub.help, f"command {name} has no help text"
        assert f"tokenplan {name}" in readme, f"README does not document `tokenplan {name}`"


def test_no_help_text_loses_a_bracketed_word_to_rich_markup() -> None:
    # Typer renders help as rich markup: "tokenplan[dask]" printed as "tokenplan".
    import re

    command = typer.main.get_command(app)
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        texts = [sub.help or ""] + [getattr(p, "help", None) or "" for p in sub.params]
        for text in texts:
            assert not re.search(r"(?<!\\)\[[a-z_]+\]", text), f"{name}: unescaped [..] in {text!r}"


def test_all_is_exactly_what_the_package_exports() -> None:
    import doctest

    exported = {n for n in dir(tokenplan) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in exported if isinstance(getattr(tokenplan, n), type(sys))}
    assert set(tokenplan.__all__) - {"__version__"} <= exported
    # Only names in __all__ are public, apart from submodules Python binds on import.
    assert exported - modules <= set(tokenplan.__all__)
    assert doctest.testmod(tokenplan).failed == 0


def test_readme_python_examples_run_as_doctests() -> None:
    import doctest

    # Code fences end an example's expected output, as a blank line would.
    lines = (ROOT / "README.md").read_text().splitlines()
    text = "\n".join("" if ln.startswith("```") else ln for ln in lines)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "README.md", str(ROOT / "README.md"), 0)
    assert test.examples, "the README has no Python examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0
