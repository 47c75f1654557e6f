"""What a speaker sends the controller: acks, queued in order so none is lost while the link is
down, and periodic heartbeats (DESIGN.md §5)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import LinkError

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.transport.link import MqttLink

log = logging.getLogger(__name__)

RETRY_S = 0.5  # between two attempts to publish an ack while the link is flapping


class Outbox:
    """One node's outbound messages over its link; `clock` and `volume` are read when sent."""

    def __init__(
        self,
        link: MqttLink,
        topics: protocol.Topics,
        node_id: str,
        *,
        clock: Callable[[], float],
        volume: Callable[[], int],
    ) -> None:
        self.link = link
        self.node_id = node_id
        self.clock = clock
        self.volume = volume
        self.started = clock()
        self._ack_topic = topics.node_ack(node_id)
        self._heartbeat_topic = topics.node_heartbeat(node_id)
        self._acks: asyncio.Queue[bytes] = asyncio.Queue()

    def ack(self, playlist_id: str, status: str, detail: str = "") -> None:
        log.debug("node %s: ack %s %s %s", self.node_id, playlist_id, status, detail)
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
