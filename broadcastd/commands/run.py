"""`broadcastd run`: the daemon, until SIGTERM."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from broadcastd.daemon import Daemon
from broadcastd.errors import EX_OK

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    daemon = Daemon(args.config)
    asyncio.run(daemon.run())
    return EX_OK
