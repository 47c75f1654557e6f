"""Run the real Daemon in its own process on a shifted clock, so a test can kill or signal it.

usage: python tests/support/daemon_main.py CONFIG OFFSET_SECONDS [--metrics] [--watch]

The clock is `time.time() + OFFSET_SECONDS`, the same shift `support.e2e.E2E.clock` gives the
in-process agents. Signals are handled exactly as `broadcastd run` handles them; exit codes too
(0 after a clean stop, 78 for a config error, 1 for other failures).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from broadcastd.daemon import Daemon
from broadcastd.errors import BroadcastdError, ConfigError


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("offset", type=float)
    parser.add_argument("--metrics", action="store_true", help="serve metrics.listen")
    parser.add_argument("--watch", action="store_true", help="reload when config files change")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    offset: float = args.offset
    try:
        daemon = Daemon(
            args.config,
            clock=lambda: time.time() + offset,
            engines=["espeak"],
            serve_metrics=args.metrics,
            watch_files=args.watch,
        )
        asyncio.run(daemon.run())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    except BroadcastdError as exc:
        print(f"daemon_main: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
