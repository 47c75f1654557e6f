"""`broadcastd run`: the daemon, until SIGTERM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broadcastd.daemon import Daemon
from broadcastd.errors import EX_OK
from broadcastd.runner import run_until_stopped

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    daemon = Daemon(args.config)
    run_until_stopped(daemon)
    return EX_OK
