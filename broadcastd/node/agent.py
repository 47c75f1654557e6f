"""The reference speaker agent: verify, prefetch, play at `play_at` by the controller's clock, ack.

The agent wires a speaker's parts together and runs them: the links (node.lanes), the playlists
it holds (node.playlists), the loop that plays them (node.schedule), the amplifier and telemetry
hooks (node.hooks), acks and heartbeats (node.outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING

from broadcastd import __version__, protocol
from broadcastd.errors import BroadcastdError, LinkError
from broadcastd.node.clock import ControllerClock
from broadcastd.node.controls import ControlDesk
from broadcastd.node.fetch import REFETCH_AFTER_S, Fetcher
from broadcastd.node.gate import Gate
from broadcastd.node.hooks import Telemetry, amplifier_for
from broadcastd.node.keyupdate import KeyUpdates
from broadcastd.node.lanes import bulk_settings
from broadcastd.node.onair import OnAir
from broadcastd.node.outbox import Outbox
from broadcastd.node.player import CommandPlayer, NullPlayer, Player
from broadcastd.node.playlists import Playlists
from broadcastd.node.schedule import Scheduler
from broadcastd.node.store import NodeStore
from broadcastd.node.trust import TrustStore
from broadcastd.transport.link import MqttLink

if TYPE_CHECKING:
    from collections.abc import Callable

    from paho.mqtt.properties import Properties

    from broadcastd.node.settings import NodeConfig

log = logging.getLogger(__name__)

ACK_DRAIN_S = 3.0  # how long a clean stop waits for queued acks to reach the broker


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
        self.wake = asyncio.Event()  # the scheduler looks again: something may have fallen due
        # Envelope times are the controller's: compared with its beacons' time, not the board's.
        self.clock = ControllerClock.for_config(config, clock, on_settle=self.wake.set)
        if player is None:
            player = CommandPlayer(config.player) if config.player else NullPlayer()
        self.player, self.amplifier = amplifier_for(config, player)
        self.telemetry = Telemetry(config.telemetry)
        self.loss = loss
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
        self.fetcher: Fetcher = Fetcher(
            self.store,
            self.link,
            self.topics,
            lambda sha256, *, ok: self.playlists.clip_done(sha256, ok=ok),
            bulk=self.bulk,
            refetch_after=refetch_after,
        )
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
        self.on_air = OnAir(
            self.player,
            self.store.clip_path,
            self._ack,
            clock=self.clock,
            level=lambda pl: self.store.level_for(pl.volume, pl.volume_since),
            on_end=self.wake.set,
        )
        self.playlists: Playlists = Playlists(
            gate=self.gate,
            store=self.store,
            fetcher=self.fetcher,
            outbox=self.outbox,
            on_air=self.on_air,
            clock=self.clock,
            ack=self._ack,
            wake=self.wake.set,
        )
        self.scheduler = Scheduler(
            self.playlists,
            clock=self.clock,
            on_air=self.on_air,
            store=self.store,
            fetcher=self.fetcher,
            wake=self.wake,
            tick=tick,
            ask_again=self._ask_playlist_again if loss else None,
            name=self.id,
        )
        self.controls = ControlDesk(
            self.id,
            self.hamlet,
            self.store,
            self.on_air,
            verify=lambda payload: self.gate.verify(payload, protocol.Control),
            reject=self.gate.reject,
            withdraw=self.playlists.withdraw,
            ack=self._ack,
            clock=self.clock,
        )
        self._stopping = asyncio.Event()

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
            link = tg.create_task(self.link.run(), name=f"{self.id}-mqtt")
            bulk = tg.create_task(self.bulk.run(), name=f"{self.id}-mqtt-bulk")
            helpers = [
                tg.create_task(self.outbox.send_acks(), name=f"{self.id}-acks"),
                tg.create_task(
                    self.outbox.heartbeats(self.config.heartbeat_s), name=f"{self.id}-heartbeat"
                ),
                tg.create_task(self.scheduler.run(tg), name=f"{self.id}-schedule"),
                tg.create_task(self.telemetry.run(self.config.heartbeat_s), name=f"{self.id}-tm"),
            ]
            if self.amplifier is not None:
                await self.amplifier.power_off(force=True)  # a crashed run may have left it on
            await self.playlists.restore()
            self.scheduler.tidy_soon()  # whatever an earlier run left behind
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
                await self.playlists.on_playlist(payload)
            case ("control", hamlet) if hamlet == self.hamlet:
                await self.controls.on_message(payload)
            case ("keys",):
                await self.keys.on_message(payload)
            case ("receipt", node) if node == self.id:
                self.outbox.on_receipt(payload)
            case ("controller_state",):
                if self.clock.on_state(payload):
                    self.outbox.resend_now()  # a restarted daemon may not have journaled them
                self.wake.set()  # a bulletin may have waited for the time

    async def _ask_playlist_again(self) -> None:
        with contextlib.suppress(LinkError):
            await self.link.subscribe([self.topics.playlist(self.hamlet)])

    # -- outbound ----------------------------------------------------------------------------------

    def _ack(self, playlist_id: str, status: str, detail: str = "") -> None:
        if status in ("played", "failed", "expired"):
            self.store.drop_pending(playlist_id)  # finished, nothing to restore
            self.scheduler.tidy_soon()
        self.outbox.ack(playlist_id, status, detail)
