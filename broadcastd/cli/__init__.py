"""The `broadcastd` command line: the entry point and one module per command."""

from broadcastd.cli.main import main, run

__all__ = ["main", "run"]
