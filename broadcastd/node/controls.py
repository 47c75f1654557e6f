"""What a speaker does with a control envelope: stop, cancel, volume (DESIGN.md §5).

A verified stop first raises its hamlet's stopped-at watermark, persisted: from then on no
playlist issued before the stop plays here, whether it was waiting, on air, restored after a
restart or delivered again later. It does so even for a stop already seen or older than the
newest control (a genuine stop only ever refuses what it covered); only what goes beyond that
(acting, acking) waits for the usual duplicate and replay checks. Every control applied is acked
`received` under its own id, its detail saying what was done (`volume 60`); a volume control
that names other nodes of the hamlet is ignored here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from broadcastd.errors import ProtocolError
from broadcastd.node.gate import claimed_id
from broadcastd.node.store import StopMark

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd import protocol
    from broadcastd.node.onair import OnAir
    from broadcastd.node.store import NodeStore

log = logging.getLogger(__name__)


class ControlDesk:
    """Applies one node's controls. `verify` checks an envelope (signature, commune, hamlet,
    expiry); `reject` acks a refusal; `withdraw(match, reason)` drops the waiting playlists
    `match` selects, acking each `failed` with `reason`."""

    def __init__(  # noqa: PLR0913 - the agent's parts a control acts on, injected
        self,
        node_id: str,
        hamlet: str,
        store: NodeStore,
        on_air: OnAir,
        *,
        verify: Callable[[bytes], protocol.Control],
        reject: Callable[[str, ProtocolError], None],
        withdraw: Callable[[Callable[[protocol.Playlist], bool], str], None],
        ack: Callable[[str, str, str], None],
        clock: Callable[[], float],
    ) -> None:
        self.id = node_id
        self.hamlet = hamlet
        self.store = store
        self.on_air = on_air
        self._verify = verify
        self._reject = reject
        self._withdraw = withdraw
        self._ack = ack
        self._clock = clock

    async def on_message(self, payload: bytes) -> None:
        if not payload:
            return
        try:
            ctl = self._verify(payload)
        except ProtocolError as exc:
            self._reject(claimed_id(payload), exc)
            return
        if not ctl.for_node(self.id):
            return  # a volume for other speakers of the hamlet
        if ctl.action == "stop":
            await self.hold(ctl)
        if ctl.id in self.store.state.controls:
            return  # delivered twice (QoS 1), or the retained stop again after a reconnect
        try:
            self.store.check_replay("control", issued_at=ctl.issued_at, seq=ctl.seq)
        except ProtocolError as exc:
            self._reject(ctl.id, exc)
            return
        await asyncio.to_thread(
            self.store.accept_control,
            ctl.id,
            issued_at=ctl.issued_at,
            expires_at=ctl.expires_at,
            seq=ctl.seq,
            now=self._clock(),
        )
        log.info("node %s: control %s %s", self.id, ctl.action, ctl.target or ctl.value or "")
        self._ack(ctl.id, "received", await self._apply(ctl))

    async def hold(self, ctl: protocol.Control) -> None:
        """Raise the watermark to this stop; withdraw and silence what it covers."""
        mark = StopMark(ctl.id, ctl.issued_at, ctl.seq)
        if not self.store.note_stop(self.hamlet, mark):
            return
        await asyncio.to_thread(self.store.save)
        reason = f"stopped by {ctl.id}"
        self._withdraw(lambda pl: mark.covers(pl.issued_at, pl.seq), reason)
        playing = self.on_air.playlist
        if playing is not None and mark.covers(playing.issued_at, playing.seq):
            await self.on_air.interrupt(reason)
        log.warning("node %s: %s; nothing issued before it plays here", self.id, reason)

    async def _apply(self, ctl: protocol.Control) -> str:
        """Act on an accepted control; what was done, for the ack."""
        if ctl.action == "cancel" and ctl.target is not None:
            target = ctl.target
            await asyncio.to_thread(self.store.mark_cancelled, target)
            self._withdraw(lambda pl: pl.id == target, f"cancelled by {ctl.id}")
            playing = self.on_air.playlist
            if playing is not None and playing.id == target:
                await self.on_air.interrupt(f"cancelled by {ctl.id}")
            return f"cancel {target}"
        if ctl.action == "volume" and ctl.value is not None:
            # The player takes the new level from its next clip on; heartbeats report it now.
            await asyncio.to_thread(self.store.set_volume, ctl.value, ctl.issued_at)
            return f"volume {ctl.value}"
        return ctl.action  # a stop: `hold` did it
