"""Signed controls (stop, cancel, volume), and withdrawing the playlists a stop or cancel covers.

A stop and a cancel withdraw playlists the same way (`withdraw`): each is marked cancelled in the
journal, so it is never re-published or dispatched again, and each affected hamlet's retained
playlist is set to what the journal says it should hold now (or cleared), so a node that connects
later never receives what was withdrawn. A stop is also retained on the hamlet's control topic
until the last playlist it stopped would have expired: a node that was offline during the stop
gets it when it reconnects and raises its stopped-at watermark before it can play anything
issued earlier (DESIGN.md §5).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd import protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from broadcastd.controller.playlists import SeqCounter
    from broadcastd.journal.store import DispatchRow, Journal
    from broadcastd.transport.audioout import Publisher

log = logging.getLogger(__name__)

CONTROL_TTL_S = 600  # a control nobody received within this is stale; a stop stays longer
CONTROLS_REMEMBERED = 1024  # recent control ids whose acks are accepted (acks come within minutes)


@dataclass(frozen=True, slots=True)
class StopSent:
    id: str
    withdrawn: list[str]  # playlist ids the stop took off the air and off the broker


class Controls:
    """Signs and publishes controls; one instance per daemon, beside the Dispatcher whose
    sequence it shares (a node compares a stop's `seq` with the playlists' to know which
    were issued before it)."""

    def __init__(  # noqa: PLR0913 - the composition root hands over each collaborator
        self,
        commune: str,
        *,
        link: Publisher,
        journal: Journal,
        key: Ed25519PrivateKey,
        seq: SeqCounter,
        clock: Callable[[], float],
        persist: Callable[[], None] | None = None,
    ) -> None:
        self._commune = commune
        self._topics = protocol.Topics(commune)
        self._link = link
        self._journal = journal
        self._key = key
        self._seq = seq
        self._clock = clock
        # A control queued for an offline node must survive a broker crash: ask for a save.
        self._persist = persist or (lambda: None)
        self._sent: OrderedDict[str, frozenset[str]] = OrderedDict()  # control id -> hamlets

    def hamlets_of(self, control_id: str) -> frozenset[str] | None:
        """The hamlets a recent control went to; None for an id this daemon did not send."""
        return self._sent.get(control_id)

    def _sent_to(self, control_id: str, hamlets: Iterable[str]) -> None:
        self._sent[control_id] = self._sent.get(control_id, frozenset()) | frozenset(hamlets)
        while len(self._sent) > CONTROLS_REMEMBERED:
            self._sent.popitem(last=False)

    async def stop(self, hamlets: Sequence[str]) -> StopSent:
        """Silence `hamlets` now and withdraw every playlist of theirs that could still play."""
        now = int(self._clock())
        live = self.live(hamlets, now)
        seq = self._seq.next()
        cid = f"stop-{seq}"
        # Known before the first publish: the first hamlet's nodes ack while we still send.
        self._sent_to(cid, hamlets)
        for hamlet in hamlets:
            # Held until the last playlist it stops would have expired; a reconnecting node
            # that missed the stop must still see it before it could play one of them.
            held = max([now + CONTROL_TTL_S, *(r.expires_at for r in live if r.hamlet == hamlet)])
            await self._send(hamlet, cid, "stop", seq=seq, now=now, expires_at=held, retain=True)
        await self.withdraw(live)
        self._persist()
        log.warning("stop sent to %s as %s: %d withdrawn", ", ".join(hamlets), cid, len(live))
        return StopSent(cid, [r.id for r in live])

    async def cancel(self, rows: Sequence[DispatchRow]) -> list[str]:
        """One signed cancel per playlist (each hamlet got its own id), then withdraw them."""
        controls: list[str] = []
        now = int(self._clock())
        for row in rows:
            seq = self._seq.next()
            cid = f"cancel-{seq}"
            self._sent_to(cid, [row.hamlet])
            await self._send(
                row.hamlet,
                cid,
                "cancel",
                seq=seq,
                now=now,
                expires_at=now + CONTROL_TTL_S,
                target=row.id,
            )
            controls.append(cid)
        await self.withdraw(rows)
        self._persist()
        for row, cid in zip(rows, controls, strict=True):
            log.info("cancel %s sent to %s as %s", row.id, row.hamlet, cid)
        return controls

    async def volume(self, targets: Mapping[str, Sequence[str] | None], value: int) -> str:
        """Set the volume of every node of each hamlet in `targets`, or only of the nodes named
        for it; one control id for all of them."""
        now = int(self._clock())
        seq = self._seq.next()
        cid = f"volume-{seq}"
        self._sent_to(cid, targets)  # before the first publish, as for a stop
        for hamlet, nodes in targets.items():
            await self._send(
                hamlet,
                cid,
                "volume",
                seq=seq,
                now=now,
                expires_at=now + CONTROL_TTL_S,
                value=value,
                nodes=None if nodes is None else tuple(nodes),
            )
        self._persist()
        log.info("volume to %d sent to %s as %s", value, ", ".join(targets), cid)
        return cid

    def live(self, hamlets: Iterable[str], now: float) -> list[DispatchRow]:
        """The journaled playlists of `hamlets` that could still play: neither expired nor
        withdrawn."""
        wanted = set(hamlets)
        return [r for r in self._journal.live(now) if r.hamlet in wanted]

    async def withdraw(self, rows: Sequence[DispatchRow]) -> None:
        """Mark `rows` cancelled, then set each of their hamlets' retained playlist to the one
        the journal says is current (re-published byte for byte) or clear it."""
        if not rows:
            return
        now = self._clock()
        await asyncio.gather(*(self._journal.mark_cancelled(r.id, now) for r in rows))
        current = {r.hamlet: r for r in self._journal.latest_per_hamlet(now)}
        for hamlet in sorted({r.hamlet for r in rows}):
            topic = self._topics.playlist(hamlet)
            row = current.get(hamlet)
            if row is None:
                await self._link.publish(topic, b"", retain=True)
            else:
                ttl = max(1, row.expires_at - int(now))
                await self._link.publish(topic, row.envelope.encode(), retain=True, expiry=ttl)

    async def _send(  # noqa: PLR0913 - one keyword per control field
        self,
        hamlet: str,
        cid: str,
        action: str,
        *,
        seq: int,
        now: int,
        expires_at: int,
        target: str | None = None,
        value: int | None = None,
        nodes: tuple[str, ...] | None = None,
        retain: bool = False,
    ) -> None:
        signed = protocol.seal(
            protocol.Control(
                commune=self._commune,
                hamlet=hamlet,
                id=cid,
                action=action,
                target=target,
                value=value,
                issued_at=now,
                expires_at=expires_at,
                seq=seq,
                nodes=nodes,
            ),
            self._key,
        )
        topic = self._topics.control(hamlet)
        if retain:
            ttl = max(1, expires_at - now)
            await self._link.publish(topic, signed.wire, retain=True, expiry=ttl)
        else:
            await self._link.publish(topic, signed.wire, retain=False)
