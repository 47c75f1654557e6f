"""`announce`, `cancel`, `stop`, `approve`: requests to the running daemon over its control socket.

Only the daemon holds the signing key and the render cache, so these commands never sign anything
themselves; without a running daemon they say so and exit 1.
"""

from __future__ import annotations

import asyncio
import json
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
        return {"cmd": "cancel", "id": args.id, "say": args.say, "correction": args.correction}
    if args.command == "stop":
        return {"cmd": "stop", "hamlets": "all" if args.all else args.hamlets}
    return {"cmd": "approve", "id": args.id, "operator": args.operator}


def run(args: argparse.Namespace) -> int:
    payload = _payload(args)
    config = load_config(args.config, probe_media=False).config
    result = asyncio.run(
        request(config.state_dir / "broadcastd.sock", payload, timeout=REQUEST_TIMEOUT_S)
    )
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return EX_OK
