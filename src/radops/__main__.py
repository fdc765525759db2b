"""Entry point for `python -m radops`."""

from radops.cli import main

main()
