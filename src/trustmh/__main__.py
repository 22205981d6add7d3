"""`python -m trustmh` runs the CLI."""

from trustmh.entry import main

main()
