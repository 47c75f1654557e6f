"""`broadcastd demo`: run one slot now on a simulated fleet and print the coverage table."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.console import Console

from broadcastd.errors import EX_FAILURE, EX_OK
from broadcastd.sim.demo import run_demo

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    ok = asyncio.run(run_demo(args.config, Console(), keep=args.keep))
    return EX_OK if ok else EX_FAILURE
