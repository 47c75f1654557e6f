"""`broadcastd simulate`: run simulated speakers against a broker until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from broadcastd.config import load_config
from broadcastd.config.fields import loopback_host
from broadcastd.errors import EX_OK, UsageError
from broadcastd.sim.fleet import Fleet

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    if args.nodes < 0:
        # a negative count used to fall through to "the config's nodes" and start them all
        raise UsageError(f"--nodes must be 0 (the config's nodes) or more, got: {args.nodes}")
    if not 0 <= args.loss < 1 or not 0 <= args.flap < 1:
        raise UsageError("--loss and --flap are probabilities between 0 and 1")
    config = load_config(args.config, probe_media=False).config
    if args.nodes > 0 and args.broker is None and config.broker.mode == "embedded":
        # Synthetic nodes share one login, and the embedded broker lets a login hold one
        # connection (each new one would close the last, and the daemon's own).
        raise UsageError(
            f"--nodes {args.nodes} needs --broker URL of a test broker without logins: the "
            "embedded broker ties each client to its own login (use --nodes 0 to run the "
            "config's nodes)"
        )
    url = args.broker or config.broker.url_for_nodes
    plain = args.broker is not None and args.broker.startswith("mqtt://")
    if plain and not loopback_host(urlsplit(args.broker).hostname):
        raise UsageError(f"--broker {args.broker}: plain MQTT beyond loopback; use mqtts://")
    cache = Path(tempfile.mkdtemp(prefix="broadcastd-sim-"))
    fleet = Fleet.for_config(
        config,
        cache_root=cache,
        count=args.nodes,
        broker_url=args.broker,  # None: the speakers' own URL, with the commune CA
        loss=args.loss,
        flap=args.flap,
    )
    print(f"simulating {len(fleet.agents)} speakers against {url} (cache {cache}); Ctrl-C stops")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, fleet.stop)
        await fleet.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return EX_OK
