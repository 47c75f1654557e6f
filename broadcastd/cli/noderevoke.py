"""`broadcastd node-revoke NODE`: end a speaker's login now (a stolen or lost board).

With the daemon running, it asks the daemon, which removes the login, disconnects the speaker's
session within a second and journals who asked. Without it, the login is removed from
`credentials.json` and the revocation journaled here, so the broker refuses the node when the
daemon starts. `broadcastd node-config NODE --new-login` provisions the replacement board.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

from broadcastd.cli.control import attribution
from broadcastd.config import load_config
from broadcastd.controller.controlsocket import request
from broadcastd.controller.revocation import COMMAND
from broadcastd.errors import EX_OK, DaemonNotRunningError, UsageError
from broadcastd.journal.store import Journal
from broadcastd.transport.credentials import Credentials

if TYPE_CHECKING:
    import argparse

    from broadcastd.config import Config

TIMEOUT_S = 15.0


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    if args.node not in config.node_hamlets():
        known = ", ".join(sorted(config.node_hamlets())) or "none"
        raise UsageError(f"no node {args.node!r} in the config (known nodes: {known})")
    payload = {"cmd": COMMAND, "node": args.node, "operator": args.operator}
    try:
        result = asyncio.run(
            request(config.state_dir / "broadcastd.sock", payload, timeout=TIMEOUT_S)
        )
    except DaemonNotRunningError:
        _offline(config, args.node, args.operator)
        return EX_OK
    print(json.dumps(result, ensure_ascii=False, indent=2))
    recorded = result.get("recorded")
    if isinstance(recorded, dict):
        print(attribution(recorded), file=sys.stderr)
    return EX_OK


def _offline(config: Config, node: str, operator: str | None) -> None:
    """No daemon, so no broker and nobody connected: the credentials file is the whole story."""
    Credentials.load_or_create(config, revoke=[node])
    journal = Journal.open(config.state_dir / "journal.sqlite3")
    try:
        detail = {"node": node, "cause": f"{COMMAND} (daemon not running)", "operator": operator}
        journal.record_event("revoke", json.dumps(detail, ensure_ascii=False))
    finally:
        journal.close()  # commits the queued row
    print(
        f"{node}: login removed (the daemon is not running, so nothing was connected); the "
        "broker refuses it from the daemon's next start",
        file=sys.stderr,
    )
