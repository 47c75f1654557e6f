"""The controller's time beacon (DESIGN.md §5): what a speaker without a good clock sets its
idea of the time by.

Speakers on 3G often have no real-time clock and bad NTP; a playlist's `play_at` is the
controller's time. Every `nodes.heartbeat`, and soon after a speaker comes online, the daemon
publishes on `controller/state` (a topic every node may already read), not retained and at
QoS 0 (a beacon queued for an offline speaker would only be stale), a signed
`{"v":1,"kind":"time","state":"online","commune":…,"ts":…,"ts_ms":…,"sig":…}`: the shape of the
retained state message plus the time in milliseconds, signed like every envelope so no one but
the controller can move the speakers' clocks. A reader that knows only `state` and `ts` sees an
`online` controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from broadcastd.errors import ProtocolError
from broadcastd.protocol.envelopes import MAX_TIME
from broadcastd.protocol.limits import VERSION, brief, is_int
from broadcastd.protocol.signing import check_signature, decode_json, encode, sign

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

BEACON_KIND: Final = "time"
MAX_BEACON_BYTES: Final = 1024


def beacon_payload(commune: str, now: float, key: Ed25519PrivateKey) -> bytes:
    """The signed beacon for controller time `now` (seconds)."""
    body = {
        "v": VERSION,
        "kind": BEACON_KIND,
        "state": "online",
        "commune": commune,
        "ts": int(now),
        "ts_ms": int(now * 1000),
    }
    return encode(sign(body, key))


def is_beacon(payload: bytes) -> bool:
    """Whether a `controller/state` payload claims to be a beacon (before any check): the
    retained state message is not one."""
    return b'"kind":"time"' in payload


def verify_beacon(payload: bytes, public_key: Ed25519PublicKey, *, commune: str) -> float:
    """The controller time a beacon carries, in seconds; ProtocolError if it is not a valid,
    signed beacon of this commune."""
    env = decode_json(payload, MAX_BEACON_BYTES)
    if env.get("v") != VERSION or env.get("kind") != BEACON_KIND:
        raise ProtocolError("malformed", f"not a v{VERSION} time beacon")
    check_signature(env, public_key)
    if env.get("commune") != commune:
        claimed = brief(env.get("commune"))
        raise ProtocolError("wrong_commune", f"for {claimed}, this is {commune!r}")
    ts_ms = env.get("ts_ms")
    if not is_int(ts_ms) or not 0 < ts_ms <= MAX_TIME * 1000:
        raise ProtocolError("malformed", f"ts_ms must be milliseconds, got: {brief(ts_ms)}")
    return int(ts_ms) / 1000
