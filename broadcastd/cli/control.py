"""`announce`, `cancel`, `stop`, `approve`, `volume`: requests to the running daemon over its
control socket.

Only the daemon holds the signing key and the render cache, so these commands never sign anything
themselves; without a running daemon they say so and exit 1. Every request carries `--operator`;
the daemon journals it as claimed, beside the Unix user the kernel proves, and the command says
which is which on stderr (stdout stays the daemon's JSON answer).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from broadcastd.config import load_config
from broadcastd.controller.controlsocket import request
from broadcastd.errors import EX_OK, UsageError

if TYPE_CHECKING:
    import argparse

REQUEST_TIMEOUT_S = 60.0  # an announcement is rendered before the daemon answers


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "announce":
        if args.exercise and args.priority == "emergency":
            raise UsageError(
                "an exercise is never an emergency: drop --priority emergency or --exercise"
            )
        return {
            "cmd": "announce",
            "text": args.text,
            "lang": args.lang,
            "hamlets": args.hamlets,
            "priority": args.priority,
            "now": args.now,
            "exercise": args.exercise,
            "operator": args.operator,
        }
    if args.command == "cancel":
        if args.say and args.correction:
            raise UsageError("give either --say TEXT or --correction, not both")
        return {
            "cmd": "cancel",
            "id": args.id,
            "say": args.say,
            "correction": args.correction,
            "operator": args.operator,
        }
    if args.command == "stop":
        hamlets = "all" if args.all else args.hamlets
        return {"cmd": "stop", "hamlets": hamlets, "operator": args.operator}
    if args.command == "volume":
        return {
            "cmd": "volume",
            "level": args.level,
            "hamlets": args.hamlets,
            "nodes": args.nodes,
            "operator": args.operator,
        }
    return {"cmd": "approve", "id": args.id, "operator": args.operator}


def run(args: argparse.Namespace) -> int:
    payload = _payload(args)
    config = load_config(args.config, probe_media=False).config
    result = asyncio.run(
        request(config.state_dir / "broadcastd.sock", payload, timeout=REQUEST_TIMEOUT_S)
    )
    print(json.dumps(result, ensure_ascii=False, indent=2))
    recorded = result.get("recorded")
    if isinstance(recorded, dict):
        print(attribution(recorded), file=sys.stderr)
    return EX_OK


def attribution(recorded: dict[str, Any]) -> str:
    """What the journal recorded of who asked, said honestly: the operator name is only claimed;
    the Unix user is proven by the kernel."""
    operator, user = recorded.get("operator"), recorded.get("unix_user")
    claimed = f"operator {operator!r} as given (not verified)" if operator else "no operator named"
    proven = f"Unix user {user!r} (verified by the kernel)" if user else "an unknown Unix user"
    return f"journaled: {claimed}, from {proven}"
