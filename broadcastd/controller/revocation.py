"""`broadcastd node-revoke NODE`: a speaker's login ends now, its connection is cut, and the
journal says who asked; a node removed from the config by a reload is cut off the same way.

A revoked node keeps its place in the config (its hamlet's households still count it missing)
but has no login until `broadcastd node-config NODE --new-login` gives it a new one: the board
that held the old password is assumed to be in the wrong hands.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from broadcastd.controller.controlsocket import Peer
from broadcastd.controller.requests import Who
from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from broadcastd.config import Config
    from broadcastd.controller.embedded import BrokerSide
    from broadcastd.journal.store import Journal

log = logging.getLogger(__name__)

COMMAND = "node-revoke"
MAX_OPERATOR = 200


class RevokeError(BroadcastdError):
    """A revocation request names no node of the config, or is malformed."""


class Revocations:
    """Answers `node-revoke` on the control socket and journals every revocation."""

    def __init__(
        self,
        config: Callable[[], Config],
        broker: BrokerSide,
        journal: Journal,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config  # read per request: a reload may change the nodes
        self._broker = broker
        self._journal = journal
        self._clock = clock

    async def handle(self, raw: Mapping[str, Any], peer: Peer | None) -> dict[str, Any]:
        node, operator = raw.get("node"), raw.get("operator")
        if operator is not None and (not isinstance(operator, str) or len(operator) > MAX_OPERATOR):
            raise RevokeError("operator must be a name of at most 200 characters")
        config = self._config()
        known = config.node_hamlets()
        if not isinstance(node, str) or node not in known:
            names = ", ".join(sorted(known)) or "none"
            raise RevokeError(f"no node {node!r} in the config (known nodes: {names})")
        who = Who(operator, peer or Peer(None, None, None))
        log.info("control %r by %s", COMMAND, who.describe())
        started = time.monotonic()
        await self._broker.revoke(config, [node])
        took = round(time.monotonic() - started, 3)
        self.record([node], cause=COMMAND, who=who)
        return {
            "node": node,
            "hamlet": known[node].id,
            "revoked_at": int(self._clock()),
            "disconnected_within_s": took,
            "recorded": {
                "operator": who.operator,
                "operator_verified": False,
                "unix_user": who.peer.user,
                "unix_user_verified": who.peer.user is not None,
            },
        }

    def record(self, nodes: Sequence[str], *, cause: str, who: Who | None = None) -> None:
        """Journal (and log) that these nodes' logins ended, and why."""
        for node in nodes:
            detail: dict[str, object] = {"node": node, "cause": cause}
            if who is not None:
                detail |= who.record()
            self._journal.record_event("revoke", json.dumps(detail, ensure_ascii=False))
            log.warning("node %r revoked (%s): its login is gone, its session ended", node, cause)
