"""`broadcastd keygen --rotate [--activate-in D] [--grace D] [--operator O]`: a new signing key.

With the daemon running, it asks the daemon, which makes the key, publishes the signed rotation
to every speaker and journals who asked. Without it, the key and the rotation are made here and
journaled; the daemon publishes the rotation when it starts. Either way the new public key is
printed on stdout (for bundles made by hand); `broadcastd nodes` shows which speakers confirmed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import sys
import time
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.cli.control import attribution
from broadcastd.config import load_config
from broadcastd.config.fields import parse_duration
from broadcastd.controller.controlsocket import request
from broadcastd.controller.keyrotation import (
    COMMAND,
    DEFAULT_ACTIVATE_IN_S,
    DEFAULT_GRACE_S,
    rotation_detail,
)
from broadcastd.errors import EX_OK, DaemonNotRunningError, UsageError
from broadcastd.journal.store import Journal
from broadcastd.transport.signingkeys import SigningKeys

if TYPE_CHECKING:
    import argparse
    from zoneinfo import ZoneInfo

    from broadcastd.config import Config

TIMEOUT_S = 15.0


def _seconds(value: str | None, option: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(parse_duration(value).total_seconds())
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}, got: {value!r}") from None


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    activate_in = _seconds(args.activate_in, "--activate-in", DEFAULT_ACTIVATE_IN_S)
    grace = _seconds(args.grace, "--grace", DEFAULT_GRACE_S)
    payload = {
        "cmd": COMMAND,
        "activate_in_s": activate_in,
        "grace_s": grace,
        "operator": args.operator,
    }
    try:
        result = asyncio.run(
            request(config.state_dir / "broadcastd.sock", payload, timeout=TIMEOUT_S)
        )
    except DaemonNotRunningError:
        return _offline(config, args.operator, activate_in, grace)
    print(result["public_key"])
    tz = config.commune.tz
    print(
        f"rotation {result['id']}: key {result['new_key']} signs from "
        f"{_local(result['activate_at'], tz)}; key {result['old_key']} is refused from "
        f"{_local(result['retire_at'], tz)}; `broadcastd nodes` shows who confirmed",
        file=sys.stderr,
    )
    if not result.get("published"):
        print("not yet on the broker: the daemon publishes it when its link is up", file=sys.stderr)
    recorded = result.get("recorded")
    if isinstance(recorded, dict):
        print(attribution(recorded), file=sys.stderr)
    return EX_OK


def _offline(config: Config, operator: str | None, activate_in: int, grace: int) -> int:
    """No daemon: the files are the whole story; the daemon publishes them when it starts."""
    keys = SigningKeys(config.signing.private_key_file)
    # The journal first: a rotation is made only where it can be journaled.
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    journal = Journal.open(config.state_dir / "journal.sqlite3")
    try:
        rotation = keys.rotate(
            commune=config.commune.id, now=int(time.time()), activate_in=activate_in, grace=grace
        )
        who = {"operator": operator, "unix_user": getpass.getuser(), "cause": "daemon not running"}
        journal.record_event("key_rotation", rotation_detail(rotation, who))
    finally:
        journal.close()  # commits the queued row
    print(rotation.key)
    tz = config.commune.tz
    print(
        f"rotation {rotation.id} made (the daemon is not running): it is published when the "
        f"daemon starts; key {protocol.fingerprint(rotation.key)} signs from "
        f"{_local(rotation.activate_at, tz)}, key {protocol.fingerprint(rotation.retires)} is "
        f"refused from {_local(rotation.retire_at, tz)}",
        file=sys.stderr,
    )
    return EX_OK


def _local(ts: object, tz: ZoneInfo | None) -> str:
    if not isinstance(ts, int | float):
        return "?"
    return dt.datetime.fromtimestamp(ts, tz=tz).isoformat(sep=" ", timespec="seconds")
