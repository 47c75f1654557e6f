"""What a speaker does with a key-rotation control (DESIGN.md §5): verify, persist, ack.

The control must be signed by a key this speaker trusts now, naming that key as the one it
retires, for this commune, newer than any rotation applied here, and that key must not have
signed a rotation before (so whoever steals an old key cannot add a key of theirs, or postpone
the old key's retirement, on a speaker that has the genuine rotation). Then the new key is
trusted at once (the daemon signs with it only from `activate_at`), the old one until
`retire_at`, and the rotation is acked `received` with the new key's fingerprint: that ack is
how `broadcastd nodes` knows the speaker confirmed it. The retained copy delivered again after a
reconnect is quiet; anything else refused is logged and acked `rejected` with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import ProtocolError
from broadcastd.node.gate import claimed_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.node.trust import TrustStore

log = logging.getLogger(__name__)


class KeyUpdates:
    """Applies one speaker's key rotations to its TrustStore."""

    def __init__(
        self,
        trust: TrustStore,
        commune: str,
        *,
        reject: Callable[[str, ProtocolError], None],
        ack: Callable[[str, str, str], None],
    ) -> None:
        self.trust = trust
        self.commune = commune
        self._reject = reject
        self._ack = ack

    async def on_message(self, payload: bytes) -> None:
        if not payload:
            return  # the retained rotation cleared
        claimed = claimed_id(payload)
        if self.trust.applied(claimed, payload):
            return  # the retained copy again, after a reconnect
        if await self._known_key(claimed, payload):
            return
        try:
            rotation = self._verify(payload)
        except ProtocolError as exc:
            self._reject(claimed, exc)
            return
        await asyncio.to_thread(self.trust.accept, rotation, payload)
        new, old = protocol.fingerprint(rotation.key), protocol.fingerprint(rotation.retires)
        log.warning(
            "signing key rotation %s: now trusting key %s (the daemon signs with it from %s);"
            " key %s refused from %s",
            rotation.id,
            new,
            self.trust.when(rotation.activate_at),
            old,
            self.trust.when(rotation.retire_at),
        )
        self._ack(rotation.id, "received", f"key {new}")

    async def _known_key(self, claimed: str, payload: bytes) -> bool:
        """A rotation to a key trusted here already (a speaker provisioned with the new key
        after the activation, whose node.yaml never had the old one): confirmed, nothing to do.
        Only its bytes are remembered, so a copy is quiet; no key is trusted or retired."""
        try:
            rotation = protocol.read_rotation(payload)
        except ProtocolError:
            return False
        if not self.trust.trusts(rotation.key, self.trust.clock()):
            return False
        await asyncio.to_thread(self.trust.note, claimed, payload)
        fp = protocol.fingerprint(rotation.key)
        self._ack(claimed, "received", f"key {fp} (trusted already)")
        return True

    def _verify(self, payload: bytes) -> protocol.KeyRotation:
        now = self.trust.clock()
        try:
            rotation = protocol.verify_rotation(
                payload, self.trust.trusted(now), commune=self.commune
            )
        except ProtocolError as exc:
            if exc.reason == "bad_signature":
                retired = self._retired_signer(payload, now)
                if retired is not None:
                    raise retired from None
            raise
        handed = self.trust.handed_over(rotation.retires)
        if handed is not None:
            raise ProtocolError(
                "superseded",
                f"key {protocol.fingerprint(handed.key)} already handed over (retires at "
                f"{self.trust.when(handed.retire_at)}); a key signs one rotation",
            )
        if rotation.issued_at <= self.trust.newest_issued:
            raise ProtocolError(
                "replay",
                f"issued at {self.trust.when(rotation.issued_at)}, not after the newest"
                f" rotation applied here ({self.trust.when(self.trust.newest_issued)})",
            )
        return rotation

    def _retired_signer(self, payload: bytes, now: float) -> ProtocolError | None:
        """`retired_key` for a rotation that names a key retired here as its signer."""
        try:
            claimed = protocol.read_rotation(payload)
        except ProtocolError:
            return None
        entry = self.trust.retired(claimed.retires, now)
        if entry is None:
            return None
        fp = protocol.fingerprint(entry.key)
        when = self.trust.when(entry.retire_at)
        return ProtocolError("retired_key", f"signed by key {fp}, retired at {when}")
