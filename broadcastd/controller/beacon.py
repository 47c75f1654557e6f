"""The controller's time beacon (protocol.beacon): sent every `nodes.heartbeat` and soon after a
node comes online, so a speaker without a good clock plays at the controller's time."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import LinkError

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.transport.link import MqttLink

log = logging.getLogger(__name__)

SOON_S = 0.2  # nodes coming online together (a broker restart) share one beacon


class TimeBeacon:
    """Publishes the signed beacon on `controller/state`, not retained, at QoS 0."""

    def __init__(
        self,
        link: MqttLink,
        key: protocol.Ed25519PrivateKey,
        *,
        commune: Callable[[], str],
        clock: Callable[[], float],
        every_s: Callable[[], float],
    ) -> None:
        self.link = link
        self.key = key
        self.commune = commune  # read at every beacon: a reload may change it
        self.clock = clock
        self.every_s = every_s
        self.sent = 0
        self._soon = asyncio.Event()

    def soon(self) -> None:
        """A node just came online: it should not wait a whole period for the time."""
        self._soon.set()

    async def run(self) -> None:
        while True:
            await self.link.connected.wait()
            await self.send()
            self._soon.clear()
            try:
                await asyncio.wait_for(self._soon.wait(), self.every_s())
                await asyncio.sleep(SOON_S)
            except TimeoutError:
                pass

    async def send(self) -> None:
        commune = self.commune()
        payload = protocol.beacon_payload(commune, self.clock(), self.key)
        try:
            await self.link.publish(
                protocol.Topics(commune).controller_state(), payload, qos=0, retain=False
            )
        except LinkError as exc:
            log.debug("time beacon not sent: %s", exc)
            return
        self.sent += 1
