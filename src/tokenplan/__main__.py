"""`python -m tokenplan` runs the CLI."""

from tokenplan.cli import main

main()
