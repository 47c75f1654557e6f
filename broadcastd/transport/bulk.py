"""Extra publish-only broker connections that carry a slot's audio chunks.

mosquitto reads at most one packet from each connection per pass of its event loop, so over
the daemon's one connection a slot's N chunks cost N passes; spread over `BULK_LINKS` more
connections they cost a fraction. When mosquitto still saved its whole database after every
pass that changed something, that was most of a dispatch (160 retained chunks of 64 KiB on a
~5 MB database: 4.3 s over one connection, 0.5 s over nine); with the time-based saves of
broker.py the same took 0.04 s and 0.02 s.

Each bulk link is an `MqttLink` with the daemon's broker and TLS settings and its own publish-only
login (the broker ties a client id to its login, so one login cannot hold two connections), no
subscriptions, no Last Will and no session kept after a disconnect. A publish goes to the least
busy bulk link that is up, and to the main link when none is up or the bulk link fails, so a bulk
link that is down never delays audio. Without logins (an external broker, whose users broadcastd
does not manage) every publish goes to the main link.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

from broadcastd.errors import LinkError
from broadcastd.transport.link import MqttLink

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

BULK_LINKS = 8  # how many logins credentials.py makes for them


async def _no_messages(_topic: str, _payload: bytes, _props: Properties | None) -> None:
    """Bulk links subscribe to nothing; the broker has nothing to route to them."""


class BulkPublisher:
    """`publish` like an MqttLink, spread over one extra connection per login; `run()` keeps them
    up."""

    def __init__(self, main: MqttLink, logins: Sequence[tuple[str, str]] = ()) -> None:
        self.main = main
        base = main.settings
        self.links = [
            MqttLink(
                dataclasses.replace(
                    base,
                    client_id=username,
                    username=username,
                    password=password,
                    will=None,
                    online=None,
                    subscriptions=(),
                    session_expiry=0,
                ),
                _no_messages,
            )
            for username, password in logins
        ]
        self._busy = [0] * len(self.links)  # publishes in flight on each bulk link

    async def run(self) -> None:
        """Run every bulk link until `close()`."""
        async with asyncio.TaskGroup() as tg:
            for link in self.links:
                tg.create_task(link.run(), name=f"mqtt-{link.settings.client_id}")

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links))

    def _pick(self) -> int | None:
        up = [i for i, link in enumerate(self.links) if link.connected.is_set()]
        return min(up, key=self._busy.__getitem__) if up else None

    async def publish(  # noqa: PLR0913 - mirrors MqttLink.publish
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        expiry: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - mirrors MqttLink.publish
    ) -> None:
        """Publish on the least busy bulk link that is up; on the main link otherwise."""
        index = self._pick()
        if index is not None:
            self._busy[index] += 1
            try:
                await self.links[index].publish(
                    topic, payload, retain=retain, qos=qos, expiry=expiry, timeout=timeout
                )
            except LinkError as exc:
                log.info("bulk link %d: %s; using the main link", index + 1, exc)
            else:
                return
            finally:
                self._busy[index] -= 1
        await self.main.publish(
            topic, payload, retain=retain, qos=qos, expiry=expiry, timeout=timeout
        )
