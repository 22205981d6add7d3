"""`python -m trustmh` runs the CLI."""

from trustmh.cli import main

main()
