"""Signing-key rotation in the daemon (DESIGN.md §5): start one, publish it, hear the nodes.

`broadcastd keygen --rotate` asks the running daemon (`key-rotate` on the control socket), which
makes the next key and the rotation control (`SigningKeys.rotate`), journals who asked with
both keys' fingerprints, and publishes the control retained on `keys`; it publishes it again on
every connect, so a broker that lost it has it back. Each node's ack of it is journaled like any
ack (`broadcastd nodes` shows who confirmed). `run()` journals the activation (the daemon signs
with the new key from then on, chosen by the clock at each signature) and, at `retire_at`, has
the old private key deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any, cast

from broadcastd import protocol
from broadcastd.controller.controlsocket import Peer
from broadcastd.controller.requests import Who
from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.localtime import local_time
from broadcastd.models import Ack, AckStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from broadcastd.config import Config
    from broadcastd.journal.store import Journal
    from broadcastd.transport.audioout import Publisher
    from broadcastd.transport.signingkeys import SigningKeys

log = logging.getLogger(__name__)

COMMAND = "key-rotate"
# Why an hour: every online node has the rotation within seconds, but a node on a flaky 3G link
# may be between reconnects; it must trust the new key before anything signed with it arrives.
DEFAULT_ACTIVATE_IN_S = 3600
# Why a week: a speaker away over a long weekend or a week-long power cut still catches up from
# the retained rotation while its old key is valid, and every playlist signed before activation
# (at most a day ahead) has expired long before its key is refused.
DEFAULT_GRACE_S = 7 * 86400
MAX_DELAY_S = 366 * 86400
MAX_OPERATOR = 200
RETIRE_CHECK_S = 1.0  # how often run() reads the (possibly shifted) clock while a rotation runs


class RotateError(BroadcastdError):
    """A `key-rotate` request is malformed, or a rotation is already in progress."""


def rotation_detail(rotation: protocol.KeyRotation, who: Mapping[str, object]) -> str:
    """The journal's `key_rotation` event: which keys, when, and who asked."""
    detail = {
        "id": rotation.id,
        "old_key": protocol.fingerprint(rotation.retires),
        "new_key": protocol.fingerprint(rotation.key),
        "issued_at": rotation.issued_at,
        "activate_at": rotation.activate_at,
        "retire_at": rotation.retire_at,
        **who,
    }
    return json.dumps(detail, ensure_ascii=False)


def seconds(raw: Mapping[str, Any], name: str, default: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DELAY_S:
        raise RotateError(f"{name} must be whole seconds from 0 to {MAX_DELAY_S}, got: {value!r}")
    return value


class KeyRotations:
    """Owns the daemon's rotations; its `SigningKeys` are the ones the RotatingKey signs with."""

    def __init__(  # noqa: PLR0913 - the composition root hands over each collaborator
        self,
        config: Callable[[], Config],
        keys: SigningKeys,
        *,
        link: Publisher,
        journal: Journal,
        clock: Callable[[], float] = time.time,
        persist: Callable[[], None] | None = None,
    ) -> None:
        self._config = config  # read per use: a reload may change the nodes
        self.keys = keys
        self._link = link
        self._journal = journal
        self._clock = clock
        self._persist = persist or (lambda: None)  # the retained rotation must survive a crash
        self._wake = asyncio.Event()
        self._activation_logged: str | None = None

    async def handle(self, raw: Mapping[str, Any], peer: Peer | None) -> dict[str, Any]:
        """`{"cmd": "key-rotate", "activate_in_s", "grace_s", "operator"}` on the socket."""
        operator = raw.get("operator")
        if operator is not None and (not isinstance(operator, str) or len(operator) > MAX_OPERATOR):
            raise RotateError("operator must be a name of at most 200 characters")
        activate_in = seconds(raw, "activate_in_s", DEFAULT_ACTIVATE_IN_S)
        grace = seconds(raw, "grace_s", DEFAULT_GRACE_S)
        who = Who(operator, peer or Peer(None, None, None))
        log.info("control %r by %s", COMMAND, who.describe())
        commune = self._config().commune.id
        rotation = await asyncio.to_thread(
            self.keys.rotate,
            commune=commune,
            now=int(self._clock()),
            activate_in=activate_in,
            grace=grace,
        )
        self._journal.record_event("key_rotation", rotation_detail(rotation, who.record()))
        tz = self._config().commune.tz
        log.warning(
            "signing key rotation %s by %s: key %s signs from %s, key %s is refused from %s",
            rotation.id,
            who.describe(),
            protocol.fingerprint(rotation.key),
            local_time(rotation.activate_at, tz),
            protocol.fingerprint(rotation.retires),
            local_time(rotation.retire_at, tz),
        )
        published = True
        try:
            await self.publish()
        except BroadcastdError as exc:  # published again on the next connect
            log.warning("rotation %s not published yet: %s", rotation.id, exc)
            published = False
        self._wake.set()
        return {
            "id": rotation.id,
            "public_key": rotation.key,
            "old_key": protocol.fingerprint(rotation.retires),
            "new_key": protocol.fingerprint(rotation.key),
            "activate_at": rotation.activate_at,
            "retire_at": rotation.retire_at,
            "published": published,
            **who.attribution(),
        }

    async def publish(self) -> None:
        """Put the latest rotation (finished or not) on the retained `keys` topic."""
        wire = self.keys.wire
        if wire is None:
            return
        topic = protocol.Topics(self._config().commune.id).keys()
        await self._link.publish(topic, wire, retain=True)
        self._persist()

    def on_ack(self, node: str, payload: bytes) -> bool:
        """Journal a node's ack of the latest rotation; False for any other ack."""
        rotation = self.keys.rotation
        if rotation is None:
            return False
        try:
            parsed = protocol.parse_ack(payload)
        except ProtocolError:
            return False  # operations counts it as bad
        hamlet = self._config().node_hamlets().get(node)
        if parsed.playlist != rotation.id or hamlet is None:
            return False
        status = cast("AckStatus", parsed.status)  # parse_ack admits only ACK_STATUSES
        ack = Ack(node, parsed.playlist, status, parsed.ts, parsed.detail)
        self._journal.record_ack(ack, hamlet.id)
        log.info("node %s: %s rotation %s (%s)", node, parsed.status, rotation.id, parsed.detail)
        return True

    async def run(self) -> None:
        """Journal the activation and finish each rotation at its `retire_at`."""
        while True:
            rotation = self.keys.in_progress()
            if rotation is None:
                await self._wake.wait()
                self._wake.clear()
                continue
            now = self._clock()
            if now >= rotation.activate_at and self._activation_logged != rotation.id:
                self._activation_logged = rotation.id
                self._event("key_activated", rotation, protocol.fingerprint(rotation.key))
            if await asyncio.to_thread(self.keys.finish, now):
                self._event("key_retired", rotation, protocol.fingerprint(rotation.retires))
                continue
            due = rotation.retire_at if now >= rotation.activate_at else rotation.activate_at
            wait = min(RETIRE_CHECK_S, due - now)
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.01, wait))
                self._wake.clear()
            except TimeoutError:
                pass

    def _event(self, kind: str, rotation: protocol.KeyRotation, key: str) -> None:
        detail = {"id": rotation.id, "key": key, "ts": int(self._clock())}
        self._journal.record_event(kind, json.dumps(detail))
        log.warning("signing key rotation %s: %s %s", rotation.id, kind.replace("_", " "), key)
