"""What a speaker sends the controller: acks, queued in order so none is lost while the link is
down, and periodic heartbeats (DESIGN.md §5).

Every ack is also a log line naming the playlist and what it says, with its times in the commune's
zone: a technician on site reads `journalctl -u broadcastd-node` to learn what the speaker did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import LinkError
from broadcastd.localtime import local_time
from broadcastd.protocol.titles import playlist_title

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.localtime import Zone
    from broadcastd.transport.link import MqttLink

log = logging.getLogger(__name__)

RETRY_S = 0.5  # between two attempts to publish an ack while the link is flapping
FINAL = frozenset({"played", "failed", "expired", "rejected"})  # nothing follows these
WORDS = {
    "received": "accepted",
    "ready": "all audio fetched and verified",
    "playing": "on air",
    "played": "played to the end",
    "expired": "expired unplayed",
}


class Outbox:
    """One node's outbound messages over its link; `clock` and `volume` are read when sent."""

    def __init__(  # noqa: PLR0913 - the clock, volume and zone are read as each message goes
        self,
        link: MqttLink,
        topics: protocol.Topics,
        node_id: str,
        *,
        clock: Callable[[], float],
        volume: Callable[[], int],
        tz: Zone = None,
    ) -> None:
        self.link = link
        self.node_id = node_id
        self.clock = clock
        self.volume = volume
        self.tz = tz
        self._titles: dict[str, str] = {}  # playlist id -> what it says, until its last ack
        self.started = clock()
        self._ack_topic = topics.node_ack(node_id)
        self._heartbeat_topic = topics.node_heartbeat(node_id)
        self._acks: asyncio.Queue[bytes] = asyncio.Queue()

    def verified(self, pl: protocol.Playlist) -> None:
        """Log a playlist whose envelope checked out; its acks will name what it says."""
        self._titles[pl.id] = title = playlist_title(pl.items)
        log.info(
            'node %s: playlist %s "%s" verified (%s, %s): plays at %s, expires %s',
            self.node_id, pl.id, title, pl.slot, pl.priority,
            local_time(pl.play_at, self.tz), local_time(pl.expires_at, self.tz),
        )  # fmt: skip

    def ack(self, playlist_id: str, status: str, detail: str = "") -> None:
        title = (self._titles.pop if status in FINAL else self._titles.get)(playlist_id, "")
        log.log(
            logging.WARNING if status in ("failed", "rejected") else logging.INFO,
            'node %s: playlist %s "%s": %s%s (ack %s)',
            self.node_id, playlist_id, title, WORDS.get(status, status),
            f": {detail}" if detail else "", status,
        )  # fmt: skip
        self._acks.put_nowait(protocol.ack_payload(playlist_id, status, self.clock(), detail))

    async def send_acks(self) -> None:
        """Publish queued acks in order, each retried until the broker has it; runs forever."""
        while True:
            payload = await self._acks.get()
            while True:
                await self.link.connected.wait()
                try:
                    await self.link.publish(self._ack_topic, payload)
                    break
                except LinkError as exc:
                    log.info("node %s: ack delayed: %s", self.node_id, exc)
                    await asyncio.sleep(RETRY_S)
            self._acks.task_done()

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded best effort
        """Wait (at most `timeout` s) until every queued ack has reached the broker."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._acks.join(), timeout)

    async def heartbeats(self, every_s: float) -> None:
        """A heartbeat every `every_s` while connected; runs forever."""
        while True:
            await self.link.connected.wait()
            now = self.clock()
            payload = protocol.heartbeat_payload(now, now - self.started, None, self.volume())
            try:
                await self.link.publish(self._heartbeat_topic, payload)
            except LinkError as exc:
                log.info("node %s: heartbeat skipped: %s", self.node_id, exc)
            await asyncio.sleep(every_s)
