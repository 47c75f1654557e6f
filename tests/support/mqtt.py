"""MQTT from the test's side: links that run for a block, an inbox to wait on, credentials."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from broadcastd.transport.link import LinkSettings, MqttLink

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from broadcastd.transport.broker import MosquittoProcess
    from broadcastd.transport.link import OnMessage


class Inbox:
    """Collects (topic, payload, properties) and lets a test wait for a topic."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, object]] = []
        self._changed = asyncio.Condition()

    async def __call__(self, topic: str, payload: bytes, props: object) -> None:
        async with self._changed:
            self.messages.append((topic, payload, props))
            self._changed.notify_all()

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic]

    async def wait_for(self, topic: str, count: int = 1, within: float = 5.0) -> list[bytes]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.on(topic)) >= count)
        return self.on(topic)


@asynccontextmanager
async def running_link(link: MqttLink, *, wait: bool = True) -> AsyncIterator[MqttLink]:
    """Run a link in a task for the block; close it (and check run() ended) afterwards."""
    task = asyncio.create_task(link.run())
    try:
        if wait:
            await link.wait_connected(5)
        yield link
    finally:
        await asyncio.wait_for(link.close(), 5)
        assert task.done(), "close() must end run()"
        task.result()


def link_as(
    broker: MosquittoProcess,
    user: str | None,
    password: str | None,
    on_message: OnMessage,
    *filters: str,
    client_id: str | None = None,
) -> MqttLink:
    """A link to `broker` as `user` (None: anonymous), subscribed to `filters` at QoS 1."""
    return MqttLink(
        LinkSettings(
            host=broker.host,
            port=broker.port,
            client_id=client_id or f"{user}-test",
            username=user,
            password=password,
            subscriptions=tuple((f, 1) for f in filters),
        ),
        on_message,
    )
