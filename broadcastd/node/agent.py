"""The reference speaker agent: verify, prefetch, play at `play_at` by its own clock, ack.

Every envelope is checked (signature, commune, hamlet, expiry, replay) before anything else
happens; a playlist id is recorded as played before its first sound so it plays at most once,
across crashes and restarts. Time comes from the injected clock; the scheduler sleeps until the
next play_at or expiry and re-reads the clock at least every `tick` (1 s), so a stepped clock, or
a simulator's fast or fake one, drives playback without real waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd import __version__, protocol
from broadcastd.errors import BroadcastdError, LinkError, ProtocolError
from broadcastd.models import PRIORITY_RANK
from broadcastd.node.clock import ControllerClock
from broadcastd.node.controls import ControlDesk
from broadcastd.node.fetch import REFETCH_AFTER_S, Fetcher
from broadcastd.node.gate import Gate, claimed_id
from broadcastd.node.hooks import Telemetry, amplifier_for
from broadcastd.node.keyupdate import KeyUpdates
from broadcastd.node.lanes import bulk_settings, fetch_rank
from broadcastd.node.onair import OnAir, interrupts
from broadcastd.node.outbox import Outbox
from broadcastd.node.player import CommandPlayer, NullPlayer, Player
from broadcastd.node.store import NodeStore
from broadcastd.node.trust import TrustStore
from broadcastd.transport.link import MqttLink

if TYPE_CHECKING:
    from collections.abc import Callable

    from paho.mqtt.properties import Properties

    from broadcastd.node.settings import NodeConfig

log = logging.getLogger(__name__)

ACK_DRAIN_S = 3.0  # how long a clean stop waits for queued acks to reach the broker
MIN_WAIT_S = 0.005  # the scheduler's shortest sleep: a deadline a hair away is not a busy loop


@dataclass(slots=True)
class Pending:
    playlist: protocol.Playlist
    ready: bool = False


class NodeAgent:
    """One speaker. `await agent.run()` until `agent.stop()` (or cancel it to simulate a crash)."""

    def __init__(  # noqa: PLR0913 - clock, player and fault knobs are injected for tests/simulation
        self,
        config: NodeConfig,
        *,
        clock: Callable[[], float] = time.time,
        player: Player | None = None,
        loss: float = 0.0,
        tick: float = 1.0,
        refetch_after: float = REFETCH_AFTER_S,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.id = config.node.id
        self.hamlet = config.node.hamlet
        # Envelope times are the controller's: compared with its beacons' time, not the board's.
        self.clock = ControllerClock.for_config(
            config,
            clock,
            on_settle=lambda: self._wake.set(),  # noqa: PLW0108 - _wake comes later
        )
        if player is None:
            player = CommandPlayer(config.player) if config.player else NullPlayer()
        self.player, self.amplifier = amplifier_for(config, player)
        self.telemetry = Telemetry(config.telemetry)
        self.loss = loss
        self.tick = tick
        self.rng = rng or random.Random()  # noqa: S311 - simulated message loss, not cryptography
        self.topics = protocol.Topics(config.node.commune)
        self.trust = TrustStore(config.cache_dir, config.public_key, clock=self.clock, tz=config.tz)
        self.gate = Gate(config, clock=self.clock, ack=self._ack, trust=self.trust)
        self.keys = KeyUpdates(
            self.trust, config.node.commune, reject=self.gate.reject, ack=self._ack
        )
        self.rejected = self.gate.rejected  # reason -> count, for logs and the simulator
        self.store = NodeStore(config.cache_dir)
        self.dropped = 0  # inbound messages dropped by the simulated `loss`
        settings = config.link_settings(clock)
        self.link = MqttLink(settings, self._on_message, on_connect=self._on_connect)
        # Routine audio has a connection of its own (node.lanes): it never delays a playlist.
        self.bulk = MqttLink(
            bulk_settings(self.link.settings),
            self._on_message,
            on_connect=lambda: self.fetcher.reconnected(self.fetcher.bulk),
        )
        self.fetcher = Fetcher(
            self.store,
            self.link,
            self.topics,
            self._clip_done,
            bulk=self.bulk,
            refetch_after=refetch_after,
        )
        self._pending: dict[str, Pending] = {}
        self._expired: set[str] = set()  # ids done with unplayed (expired, stopped): acked once
        # Ids between the _known() check and their entry in _pending: the same playlist can arrive
        # twice at once (restored from disk and retained on the broker) across the awaits below.
        self._accepting: dict[str, protocol.Playlist] = {}
        node = config.node
        self.outbox = Outbox.for_config(
            config,
            self.link,
            self.topics,
            clock=clock,
            volume=lambda: self.volume,
            receipts=lambda p: self.trust.verify_receipt(p, commune=node.commune, node=node.id),
            extra=lambda: {**self.clock.heartbeat_fields(), **self.telemetry.heartbeat_fields()},
        )
        self._tidy_due = False  # a playlist finished: stop its downloads, prune the cache
        self._wake = asyncio.Event()
        self.on_air = OnAir(
            self.player,
            self.store.clip_path,
            self._ack,
            clock=self.clock,
            level=lambda pl: self.store.level_for(pl.volume, pl.volume_since),
            on_end=self._wake.set,
        )
        self.controls = ControlDesk(
            self.id,
            self.hamlet,
            self.store,
            self.on_air,
            verify=lambda payload: self.gate.verify(payload, protocol.Control),
            reject=self.gate.reject,
            withdraw=self._withdraw,
            ack=self._ack,
            clock=self.clock,
        )
        self._stopping = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def volume(self) -> int:
        """The level on air now, or the node's own level when nothing plays."""
        level = self.on_air.level
        return self.store.state.volume if level is None else level

    def stop(self) -> None:
        """Ask `run()` to finish: stop playback, flush acks, publish `offline`, disconnect."""
        self._stopping.set()

    async def run(self) -> None:
        """Serve until `stop()`; raises BroadcastdError (e.g. the cache_dir became unwritable)."""
        await asyncio.to_thread(self.store.open)
        await asyncio.to_thread(self.trust.open)
        try:
            await self._serve()
        except* BroadcastdError as group:
            raise group.exceptions[0] from None  # one clear message for the CLI, not a group
        finally:
            self.fetcher.close()
            self.outbox.acks.close()
            if self.amplifier is not None:
                self.amplifier.abandon()

    async def _serve(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            link = tg.create_task(self.link.run(), name=f"{self.id}-mqtt")
            bulk = tg.create_task(self.bulk.run(), name=f"{self.id}-mqtt-bulk")
            helpers = [
                tg.create_task(self.outbox.send_acks(), name=f"{self.id}-acks"),
                tg.create_task(
                    self.outbox.heartbeats(self.config.heartbeat_s), name=f"{self.id}-heartbeat"
                ),
                tg.create_task(self._schedule(), name=f"{self.id}-schedule"),
                tg.create_task(self.telemetry.run(self.config.heartbeat_s), name=f"{self.id}-tm"),
            ]
            if self.amplifier is not None:
                await self.amplifier.power_off(force=True)  # a crashed run may have left it on
            await self._restore_pending()
            await self._stopping.wait()
            await self.on_air.interrupt("agent stopping")
            if self.amplifier is not None:
                await self.amplifier.close()
            await self.outbox.drain(ACK_DRAIN_S)
            for task in helpers:
                task.cancel()
            offline = protocol.state_payload("offline", self.clock(), __version__)
            await self.bulk.close()
            await self.link.close(final=(self.topics.node_state(self.id), offline))
            await asyncio.gather(link, bulk)

    async def _restore_pending(self) -> None:
        """Playlists accepted before a restart: verified again, so one that expired while the
        speaker was down acks `expired` (and never plays) instead of being forgotten."""
        for payload in self.store.pending_envelopes():  # read from state.json at open
            claimed = claimed_id(payload)
            if claimed in self.store.state.played or claimed in self.store.state.cancelled:
                self.store.drop_pending(claimed)
                continue
            await self._on_playlist(payload)
        self._tidy_due = True  # whatever an earlier run left behind
        self._wake.set()

    async def _on_connect(self) -> None:
        self.outbox.resend_now()
        await self.fetcher.reconnected(self.fetcher.control)

    # -- inbound -----------------------------------------------------------------------------------

    async def _on_message(self, topic: str, payload: bytes, _props: Properties | None) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            return
        route = self.topics.parse(topic)
        if route is None:
            return
        match route:
            case ("audio", sha, index):
                await self.fetcher.on_chunk(sha, int(index), payload)
            case ("playlist", hamlet) if hamlet == self.hamlet:
                await self._on_playlist(payload)
            case ("control", hamlet) if hamlet == self.hamlet:
                await self.controls.on_message(payload)
            case ("keys",):
                await self.keys.on_message(payload)
            case ("receipt", node) if node == self.id:
                self.outbox.on_receipt(payload)
            case ("controller_state",):
                if self.clock.on_state(payload):
                    self.outbox.resend_now()  # a restarted daemon may not have journaled them
                self._wake.set()  # a bulletin may have waited for the time

    async def _on_playlist(self, payload: bytes) -> None:
        if not payload:
            return  # the controller cleared the retained playlist (a cancel)
        try:
            pl = self.gate.verify(payload, protocol.Playlist)
        except ProtocolError as exc:
            claimed = claimed_id(payload)
            if exc.reason != "expired":
                self.gate.reject(claimed, exc)
            elif self.clock.unsure():
                self.clock.defer(payload)  # expired by the board's clock: judged again by ours
            elif not self._known(claimed):
                self._expired.add(claimed)
                self._ack(claimed, "expired", exc.detail)
            return
        if self._known(pl.id) or pl.id in self._accepting or pl.id in self.store.state.cancelled:
            return  # a retained playlist delivered again after a reconnect
        self.outbox.verified(pl)
        try:
            self.store.check_replay("playlist", issued_at=pl.issued_at, seq=pl.seq, slot=pl.slot)
        except ProtocolError as exc:
            self.gate.reject(pl.id, exc)
            return
        if self._stopped(pl):
            return
        self._accepting[pl.id] = pl
        try:
            await self._accept(pl, payload)
        finally:
            self._accepting.pop(pl.id, None)

    async def _accept(self, pl: protocol.Playlist, payload: bytes) -> None:
        superseded = [p.playlist.id for p in self._pending.values() if p.playlist.slot == pl.slot]
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
        self._ack(pl.id, "received")
        for other in list(self._pending.values()):
            if other.playlist.slot == pl.slot:
                del self._pending[other.playlist.id]
                self._ack(other.playlist.id, "failed", f"superseded by {pl.id}")
        self._pending[pl.id] = Pending(pl)
        on_its_way = self.fetcher.ready | self.fetcher.active.keys()
        lost = [i.sha256 for i in pl.items if i.sha256 not in on_its_way]
        if lost:  # a clip failed verification for good before the playlist was pending
            await self._clip_done(lost[0], ok=False)
            return
        self._check_ready()

    async def _fetch(self, pl: protocol.Playlist) -> None:
        for item in pl.items:
            await self.fetcher.need(item, fetch_rank(pl))

    def _known(self, playlist_id: str) -> bool:
        current = self.on_air.playlist.id if self.on_air.playlist else None
        return (
            playlist_id in self.store.state.played
            or playlist_id in self._pending
            or playlist_id in self._expired
            or playlist_id == current
        )

    def _withdraw(self, match: Callable[[protocol.Playlist], bool], reason: str) -> None:
        """Drop the waiting playlists `match` selects (a stop or cancel), acking each `failed`."""
        for pid, pending in list(self._pending.items()):
            if match(pending.playlist):
                del self._pending[pid]
                self._expired.add(pid)
                self._ack(pid, "failed", reason)

    def _stopped(self, pl: protocol.Playlist) -> bool:
        """Whether `pl` was issued before a stop of its hamlet: then it never plays here (acked
        `failed` once; a retained copy delivered again is quiet)."""
        stop = self.store.stopped_by(pl.hamlet, pl.issued_at, pl.seq)
        if stop is not None and pl.id not in self._expired:
            self._expired.add(pl.id)
            self._ack(pl.id, "failed", f"stopped by {stop.id}")
        return stop is not None

    # -- audio readiness ---------------------------------------------------------------------------

    async def _clip_done(self, sha256: str, *, ok: bool) -> None:
        if ok:
            self._check_ready()
            return
        for pid, pending in list(self._pending.items()):
            if any(i.sha256 == sha256 for i in pending.playlist.items):
                del self._pending[pid]
                self._ack(pid, "failed", f"audio {sha256[:12]} failed verification")

    def _check_ready(self) -> None:
        for pending in self._pending.values():
            if not pending.ready and all(
                i.sha256 in self.fetcher.ready for i in pending.playlist.items
            ):
                pending.ready = True
                self._ack(pending.playlist.id, "ready")
        self._wake.set()

    # -- scheduling and playback -------------------------------------------------------------------

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        while True:
            self._wake.clear()
            for deferred in self.clock.settled():  # judged again by the controller's time
                await self._on_playlist(deferred)
            await self._run_due(self.clock())
            if self._tidy_due:
                await self._tidy()
            await self.fetcher.resubscribe(stalled_only=True)
            if self.loss and loop.time() - asked > self.fetcher.refetch_after:
                # Simulated loss can drop the retained playlist itself; a real QoS 1 session
                # cannot, so only the simulator pays for asking again.
                asked = loop.time()
                with contextlib.suppress(LinkError):
                    await self.link.subscribe([self.topics.playlist(self.hamlet)])
            delay = self._next_wake(self.clock(), asked + self.fetcher.refetch_after - loop.time())
            if delay is None:
                await self._wake.wait()  # nothing pending or downloading: nothing can fall due
                continue
            # A timer handle, not wait_for's task per wait: a simulated fleet runs 1000 of these.
            timer = loop.call_later(delay, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()

    async def _tidy(self) -> None:
        """Once a playlist is done with: stop downloads no playlist needs any more and delete
        clips unused for a week (NodeStore.prune); a speaker runs for years on a small card."""
        self._tidy_due = False
        playlists = [*self._accepting.values(), *(p.playlist for p in self._pending.values())]
        if self.on_air.playlist is not None:
            playlists.append(self.on_air.playlist)
        keep = {item.sha256 for pl in playlists for item in pl.items}
        await self.fetcher.abandon(keep)
        removed = self.store.prune(keep | self.fetcher.active.keys())
        self.fetcher.ready.difference_update(removed)

    def _next_wake(self, now: float, ask_in: float) -> float | None:
        """Seconds until something can fall due: a ready playlist's play_at, an expiry, a stalled
        download's check (or the simulator's re-ask, `ask_in`), at most `tick` so a (possibly
        fake or stepped) clock is re-read; None if only an event (a message) can change anything.
        A playlist due but waiting for the current bulletin is woken by that bulletin's end."""
        waits = [p.playlist.expires_at - now for p in self._pending.values()]
        waits += [
            p.playlist.play_at - now
            for p in self._pending.values()
            if p.ready and p.playlist.play_at > now
        ]
        stalled_in = self.fetcher.stall_check_in()
        if stalled_in is not None:
            waits.append(stalled_in)
        if self.loss:
            waits.append(ask_in)
        if not waits:
            return None
        return max(MIN_WAIT_S, min(self.tick, *waits))

    async def _run_due(self, now: float) -> None:
        for pid, pending in list(self._pending.items()):
            if now >= pending.playlist.expires_at:
                del self._pending[pid]
                self._expired.add(pid)
                why = "missed its window" if pending.ready else "audio incomplete at expiry"
                self._ack(pid, "expired", why)
        synced = not self.clock.waiting()  # else only an emergency plays by the board's clock
        due = sorted(
            (
                p.playlist
                for p in self._pending.values()
                if p.ready and p.playlist.play_at <= now and (synced or interrupts(p.playlist))
            ),
            key=lambda pl: (not interrupts(pl), PRIORITY_RANK.get(pl.priority, 9), pl.play_at),
        )
        if not due:
            return
        first = due[0]
        if self._stopped(first):  # a stop that came while this one was queued
            del self._pending[first.id]
            return
        if not self.on_air.may_start(first):
            return  # wait for the current bulletin to end
        await self.on_air.interrupt(f"interrupted by emergency {first.id}")  # if any is on air
        del self._pending[first.id]
        if first.id in self.store.state.played:
            return  # at most once, ever: whatever queued it again, it has already played
        await asyncio.to_thread(self.store.mark_played, first.id)  # before the first sound
        if first.id in self.store.state.cancelled:
            return  # a cancel arrived while the mark was being written
        assert self._tg is not None  # noqa: S101 - set by run() before the scheduler starts
        self.on_air.start(self._tg, first, name=f"{self.id}-play-{first.id}")

    # -- outbound ----------------------------------------------------------------------------------

    def _ack(self, playlist_id: str, status: str, detail: str = "") -> None:
        if status in ("played", "failed", "expired"):
            self.store.drop_pending(playlist_id)  # finished, nothing to restore
            self._tidy_due = True
        self.outbox.ack(playlist_id, status, detail)
