"""Entry point for `python -m radops`."""

from radops.cli import entry

entry()
