"""The door every envelope passes: verified for this node (signature by a key it trusts now,
commune, hamlet, expiry)
and of the kind its topic carries, or refused with a `rejected` ack naming the reason."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, TypeVar

from broadcastd import protocol
from broadcastd.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.node.settings import NodeConfig
    from broadcastd.node.trust import TrustStore

log = logging.getLogger(__name__)

_E = TypeVar("_E", protocol.Playlist, protocol.Control)
INVALID_ID = "invalid-id"  # what a rejection ack names when the envelope has no usable id


class Gate:
    """Verifies one node's envelopes; counts and acks what it refuses."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        clock: Callable[[], float],
        ack: Callable[[str, str, str], None],
        trust: TrustStore,
    ) -> None:
        self.node = config.node
        self.trust = trust  # the keys trusted now: node.yaml's, then those rotations brought
        self.clock = clock
        self.ack = ack
        self.rejected: Counter[str] = Counter()  # reason -> count, for logs and the simulator

    def verify(self, payload: bytes, kind: type[_E]) -> _E:
        """The envelope, typed, if it is valid here and of the kind its topic carries."""
        node = self.node
        env = self.trust.verify(payload, commune=node.commune, hamlet=node.hamlet)
        if not isinstance(env, kind):
            raise ProtocolError("malformed", f"kind must be {kind.kind!r}, got: {env.kind!r}")
        return env

    def reject(self, claimed_id: str, exc: ProtocolError) -> None:
        self.rejected[exc.reason] += 1
        log.warning("node %s: rejected %r: %r", self.node.id, claimed_id, str(exc))  # unverified
        self.ack(claimed_id, "rejected", exc.reason)


def claimed_id(payload: bytes) -> str:
    """The id an envelope claims, for a rejection ack only (it is not trusted); `invalid-id`
    when there is none or it is not an id (the daemon refuses acks naming anything else)."""
    try:
        claimed = protocol.decode_json(payload, protocol.MAX_ENVELOPE_BYTES).get("id")
    except ProtocolError:
        return INVALID_ID
    return claimed if protocol.is_wire_id(claimed) else INVALID_ID
