"""The playlists a speaker holds until they play: verified, made durable, downloaded, ready.

Every envelope is checked (signature, commune, hamlet, expiry, replay) before anything else
happens. One whose expiry is judged while the controller's time is still unknown waits in the
clock (node.clock) and comes back here once that time is known. Those done with unplayed
(expired, stopped, withdrawn) are remembered: acked once, a retained copy delivered again is quiet.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import ProtocolError
from broadcastd.models import PRIORITY_RANK
from broadcastd.node.gate import claimed_id
from broadcastd.node.lanes import fetch_rank
from broadcastd.node.onair import interrupts

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.node.clock import ControllerClock
    from broadcastd.node.fetch import Fetcher
    from broadcastd.node.gate import Gate
    from broadcastd.node.onair import OnAir
    from broadcastd.node.outbox import Outbox
    from broadcastd.node.store import NodeStore


@dataclass(slots=True)
class Pending:
    playlist: protocol.Playlist
    ready: bool = False


class Playlists:
    """The playlists accepted and not yet on air (`pending`), and those done with unplayed."""

    def __init__(  # noqa: PLR0913 - the speaker's parts acceptance reads, each injected
        self,
        *,
        gate: Gate,
        store: NodeStore,
        fetcher: Fetcher,
        outbox: Outbox,
        on_air: OnAir,
        clock: ControllerClock,
        ack: Callable[[str, str, str], None],
        wake: Callable[[], None],
    ) -> None:
        self.gate = gate
        self.store = store
        self.fetcher = fetcher
        self.outbox = outbox
        self.on_air = on_air
        self.clock = clock
        self.ack = ack
        self.wake = wake  # something may have fallen due: the scheduler looks again
        self.pending: dict[str, Pending] = {}
        self.expired: set[str] = set()  # ids done with unplayed (expired, stopped): acked once
        # Ids between the known() check and their entry in `pending`: the same playlist can
        # arrive twice at once (restored from disk and retained on the broker) across the awaits.
        self.accepting: dict[str, protocol.Playlist] = {}

    # -- acceptance --------------------------------------------------------------------------------

    async def restore(self) -> None:
        """Playlists accepted before a restart: verified again, so one that expired while the
        speaker was down acks `expired` (and never plays) instead of being forgotten."""
        for payload in self.store.pending_envelopes():  # read from state.json at open
            claimed = claimed_id(payload)
            if claimed in self.store.state.played or claimed in self.store.state.cancelled:
                self.store.drop_pending(claimed)
                continue
            await self.on_playlist(payload)
        self.wake()

    async def on_playlist(self, payload: bytes) -> None:
        if not payload:
            return  # the controller cleared the retained playlist (a cancel)
        try:
            pl = self.gate.verify(payload, protocol.Playlist)
        except ProtocolError as exc:
            self._refused(claimed_id(payload), payload, exc)
            return
        if self.known(pl.id) or pl.id in self.accepting or pl.id in self.store.state.cancelled:
            return  # a retained playlist delivered again after a reconnect
        self.outbox.verified(pl)
        try:
            self.store.check_replay("playlist", issued_at=pl.issued_at, seq=pl.seq, slot=pl.slot)
        except ProtocolError as exc:
            self.gate.reject(pl.id, exc)
            return
        if self.stopped(pl):
            return
        self.accepting[pl.id] = pl
        try:
            await self._accept(pl, payload)
        finally:
            self.accepting.pop(pl.id, None)

    def _refused(self, claimed: str, payload: bytes, exc: ProtocolError) -> None:
        if exc.reason != "expired":
            self.gate.reject(claimed, exc)
        elif self.clock.unsure():
            self.clock.defer(payload)  # expired by the board's clock: judged again by ours
        elif not self.known(claimed):
            self.expired.add(claimed)
            self.ack(claimed, "expired", exc.detail)

    async def _accept(self, pl: protocol.Playlist, payload: bytes) -> None:
        superseded = [p.playlist.id for p in self.pending.values() if p.playlist.slot == pl.slot]
        # The download starts while the acceptance is made durable: chunks on disk are useful
        # whatever happens next, and a weak link should not idle through an fsync.
        await asyncio.gather(
            asyncio.to_thread(
                self.store.accept_playlist,
                pl.id,
                payload,
                issued_at=pl.issued_at,
                seq=pl.seq,
                slot=pl.slot,
                supersedes=superseded,
            ),
            self._fetch(pl),
        )
        self.ack(pl.id, "received", "")
        for other in list(self.pending.values()):
            if other.playlist.slot == pl.slot:
                del self.pending[other.playlist.id]
                self.ack(other.playlist.id, "failed", f"superseded by {pl.id}")
        self.pending[pl.id] = Pending(pl)
        on_its_way = self.fetcher.ready | self.fetcher.active.keys()
        lost = [i.sha256 for i in pl.items if i.sha256 not in on_its_way]
        if lost:  # a clip failed verification for good before the playlist was pending
            await self.clip_done(lost[0], ok=False)
            return
        self._check_ready()

    async def _fetch(self, pl: protocol.Playlist) -> None:
        for item in pl.items:
            await self.fetcher.need(item, fetch_rank(pl))

    def known(self, playlist_id: str) -> bool:
        current = self.on_air.playlist.id if self.on_air.playlist else None
        return (
            playlist_id in self.store.state.played
            or playlist_id in self.pending
            or playlist_id in self.expired
            or playlist_id == current
        )

    def withdraw(self, match: Callable[[protocol.Playlist], bool], reason: str) -> None:
        """Drop the waiting playlists `match` selects (a stop or cancel), acking each `failed`."""
        for pid, pending in list(self.pending.items()):
            if match(pending.playlist):
                del self.pending[pid]
                self.expired.add(pid)
                self.ack(pid, "failed", reason)

    def stopped(self, pl: protocol.Playlist) -> bool:
        """Whether `pl` was issued before a stop of its hamlet: then it never plays here (acked
        `failed` once; a retained copy delivered again is quiet)."""
        stop = self.store.stopped_by(pl.hamlet, pl.issued_at, pl.seq)
        if stop is not None and pl.id not in self.expired:
            self.expired.add(pl.id)
            self.ack(pl.id, "failed", f"stopped by {stop.id}")
        return stop is not None

    # -- audio readiness ---------------------------------------------------------------------------

    async def clip_done(self, sha256: str, *, ok: bool) -> None:
        if ok:
            self._check_ready()
            return
        for pid, pending in list(self.pending.items()):
            if any(i.sha256 == sha256 for i in pending.playlist.items):
                del self.pending[pid]
                self.ack(pid, "failed", f"audio {sha256[:12]} failed verification")

    def _check_ready(self) -> None:
        for pending in self.pending.values():
            if not pending.ready and all(
                i.sha256 in self.fetcher.ready for i in pending.playlist.items
            ):
                pending.ready = True
                self.ack(pending.playlist.id, "ready", "")
        self.wake()

    # -- what falls due ----------------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Ack `expired` every waiting playlist whose window has closed."""
        for pid, pending in list(self.pending.items()):
            if now >= pending.playlist.expires_at:
                del self.pending[pid]
                self.expired.add(pid)
                why = "missed its window" if pending.ready else "audio incomplete at expiry"
                self.ack(pid, "expired", why)

    def due(self, now: float, *, synced: bool) -> list[protocol.Playlist]:
        """The ready playlists whose play_at has come, emergencies first, then by priority and
        play_at; before the controller's time is known (`synced` false) only emergencies."""
        return sorted(
            (
                p.playlist
                for p in self.pending.values()
                if p.ready and p.playlist.play_at <= now and (synced or interrupts(p.playlist))
            ),
            key=lambda pl: (not interrupts(pl), PRIORITY_RANK.get(pl.priority, 9), pl.play_at),
        )

    def deadlines_in(self, now: float) -> list[float]:
        """Seconds until each waiting playlist expires, and until each ready one's play_at."""
        waits = [p.playlist.expires_at - now for p in self.pending.values()]
        waits += [
            p.playlist.play_at - now
            for p in self.pending.values()
            if p.ready and p.playlist.play_at > now
        ]
        return waits

    def clips_needed(self) -> set[str]:
        """The clips of every playlist being accepted, waiting or on air."""
        playlists = [*self.accepting.values(), *(p.playlist for p in self.pending.values())]
        if self.on_air.playlist is not None:
            playlists.append(self.on_air.playlist)
        return {item.sha256 for pl in playlists for item in pl.items}
