"""`broadcastd-node -c node.yaml`: run one speaker agent. The only node module that exits."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd import __version__
from broadcastd.errors import EX_OK, EX_USAGE, BroadcastdError, report_failure
from broadcastd.localtime import use_log_zone
from broadcastd.node.agent import NodeAgent
from broadcastd.node.settings import load_node_config

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_CONFIG = Path("/etc/broadcastd-node/node.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcastd-node", description="Speaker agent: plays signed bulletins from broadcastd"
    )
    parser.add_argument("--version", action="version", version=f"broadcastd-node {__version__}")
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help="node.yaml")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-vv for debug")
    return parser


async def _serve(agent: NodeAgent) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop)
    await agent.run()


def run(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if exc.code in (0, None) else EX_USAGE
    level = logging.INFO if args.verbose <= 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_node_config(args.config)
        use_log_zone(config.tz)
        asyncio.run(_serve(NodeAgent(config)))
    except BroadcastdError as exc:
        return report_failure("broadcastd-node", exc)
    except KeyboardInterrupt:
        return 130
    return EX_OK


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))
