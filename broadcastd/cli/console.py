"""`broadcastd console`: serve the web console (see broadcastd/console/)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.console import serve
from broadcastd.errors import EX_OK
from broadcastd.localtime import use_log_zone

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    use_log_zone(loaded.config.commune.tz)  # as the daemon's and the speakers' lines read
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(loaded))
    return EX_OK
