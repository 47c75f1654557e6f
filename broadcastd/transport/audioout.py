"""Retained audio for the speakers: each clip once, as 64 KiB chunks on `audio/<sha256>/<i>`
(DESIGN.md §5) that outlive the last playlist naming it, published clip after clip.

Clip after clip (PUBLISH_CONCURRENCY chunks in flight, all of one clip before the next), not all
clips side by side: a playlist goes out as soon as its own clips are retained, so the first
hamlets' speakers are fetching while the rest is still being published. An emergency's chunks
go first: routine publishing waits while `urgent_clear` is cleared.
"""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from broadcastd import protocol
from broadcastd.errors import handled_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from broadcastd.models import Clip

AUDIO_EXPIRY_MARGIN_S = 3600  # audio outlives its playlists a little, for late fetchers
PUBLISH_CONCURRENCY = 8


class Publisher(Protocol):
    async def publish(  # noqa: PLR0913 - mirrors MqttLink.publish
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        expiry: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - mirrors MqttLink.publish
    ) -> None: ...


class AudioOut:
    """Publishes clips' chunks through `publisher` (the bulk links, see bulk.py)."""

    def __init__(
        self, publisher: Publisher, topics: protocol.Topics, clock: Callable[[], float]
    ) -> None:
        self.publisher = publisher
        self.topics = topics
        self.clock = clock
        self.expiry: dict[str, int] = {}  # sha256 -> when its retained chunks expire
        self.urgent_clear = asyncio.Event()  # cleared while an emergency is being published
        self.urgent_clear.set()

    def forget(self) -> None:
        """The broker may have lost retained audio (a reconnect): publish every clip again."""
        self.expiry.clear()

    async def publish(
        self,
        clips: Iterable[Clip],
        expires: int,
        *,
        urgent: bool,
        retained: Mapping[str, asyncio.Event] = MappingProxyType({}),
    ) -> None:
        """Each clip not yet retained until `expires` (+ the margin); `retained[sha]` is set once
        all of a clip's chunks are acknowledged, at once for one the broker already holds."""
        wanted = expires + AUDIO_EXPIRY_MARGIN_S
        chunks = await self._unsent(clips, expires)
        for sha, event in retained.items():
            if not chunks.get(sha):
                event.set()
        left = {sha: len(c) for sha, c in chunks.items()}
        jobs = ((sha, i, chunk) for sha, c in chunks.items() for i, chunk in enumerate(c))

        async def publisher() -> None:
            for sha, index, chunk in jobs:  # shared: each chunk is taken by one publisher
                if not urgent:
                    await self.urgent_clear.wait()  # an emergency goes first
                ttl = max(1, wanted - int(self.clock()))
                await self.publisher.publish(
                    self.topics.audio(sha, index), chunk, retain=True, expiry=ttl
                )
                left[sha] -= 1
                if left[sha] == 0:
                    self.expiry[sha] = wanted
                    if sha in retained:
                        retained[sha].set()

        try:
            async with asyncio.TaskGroup() as tg:
                for n in range(min(PUBLISH_CONCURRENCY, sum(left.values()))):
                    tg.create_task(publisher(), name=f"audio-publisher-{n}")
        except ExceptionGroup as group:
            # Callers handle a BroadcastdError (e.g. not connected yet at start-up: the outbox is
            # re-published on connect); wrapped in a group it would escape them and end the daemon.
            raise handled_error(group) from None

    async def _unsent(self, clips: Iterable[Clip], expires: int) -> dict[str, list[bytes]]:
        """sha256 -> chunks of each clip the broker may not hold until `expires`, in order."""
        unique = {c.sha256: c for c in clips if self.expiry.get(c.sha256, 0) < expires}
        reads = [asyncio.to_thread(c.path.read_bytes) for c in unique.values()]
        data = await asyncio.gather(*reads)
        return {sha: list(protocol.iter_chunks(b)) for sha, b in zip(unique, data, strict=True)}
