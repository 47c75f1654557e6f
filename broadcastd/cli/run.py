"""`broadcastd run`: the daemon, until SIGTERM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broadcastd.controller.daemon import Daemon
from broadcastd.controller.runner import run_until_stopped
from broadcastd.errors import EX_OK
from broadcastd.localtime import use_log_zone

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    daemon = Daemon(args.config)
    use_log_zone(lambda: daemon.config.commune.tz)  # a reload may change the zone
    run_until_stopped(daemon)
    return EX_OK
