"""Ack receipts (DESIGN.md §5): the daemon tells a node which of its acks are in the journal.

A node numbers its acks (`n`, 1, 2, ... for ever) and keeps each on disk until a receipt names
it; the daemon sends one once the ack is committed to its journal. Signed like every envelope:
a receipt makes a node forget acks, so a forged one would make a speaker's plays go unreported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from broadcastd.errors import ProtocolError
from broadcastd.protocol.limits import VERSION, brief, is_int
from broadcastd.protocol.payloads import MAX_ACK_NUMBER
from broadcastd.protocol.signing import check_signature, decode_json, encode, sign

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

KIND: Final = "receipt"
MAX_ACKS: Final = 500  # per receipt; a node holds far fewer unconfirmed acks at once
MAX_RECEIPT_BYTES: Final = 16 * 1024


def receipt_payload(
    commune: str, node: str, acks: Sequence[int], issued_at: float, key: Ed25519PrivateKey
) -> bytes:
    """The signed wire form of a receipt for `acks` (ack numbers) of `node`."""
    body = {
        "v": VERSION,
        "kind": KIND,
        "commune": commune,
        "node": node,
        "acks": sorted(set(acks)),
        "issued_at": int(issued_at),
    }
    return encode(sign(body, key))


def verify_receipt(
    payload: bytes, public_key: Ed25519PublicKey, *, commune: str, node: str
) -> list[int]:
    """The ack numbers a genuine receipt for this node confirms; ProtocolError otherwise."""
    env = decode_json(payload, MAX_RECEIPT_BYTES)
    if env.get("v") != VERSION or env.get("kind") != KIND:
        raise ProtocolError("malformed", f"not a v{VERSION} receipt: {brief(env.get('kind'))}")
    check_signature(env, public_key)
    if env.get("commune") != commune or env.get("node") != node:
        raise ProtocolError(
            "wrong_node", f"for {brief(env.get('node'))} of {brief(env.get('commune'))}"
        )
    acks = env.get("acks")
    if not isinstance(acks, list) or len(acks) > MAX_ACKS:
        raise ProtocolError("malformed", "acks must be a list of ack numbers")
    if not all(is_int(n) and 1 <= n <= MAX_ACK_NUMBER for n in acks):
        raise ProtocolError("malformed", "acks must be positive integers")
    return [int(n) for n in acks]
