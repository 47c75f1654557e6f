"""Resumable audio download over retained chunk topics, one exact topic per missing chunk.

Subscribing only to the chunks a speaker lacks means a restart on a weak 3G link re-transfers
nothing it already wrote; a wildcard would make the broker resend every retained chunk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from broadcastd.errors import LinkError
from broadcastd.protocol import CHUNK_SIZE

if TYPE_CHECKING:
    from broadcastd.mqtt import MqttLink
    from broadcastd.node.store import NodeStore
    from broadcastd.protocol import PlaylistItem, Topics

log = logging.getLogger(__name__)


class OnDone(Protocol):
    async def __call__(self, sha256: str, *, ok: bool) -> None: ...


MAX_ASSEMBLY_FAILURES = 3


@dataclass(slots=True)
class Fetch:
    sha256: str
    size: int
    chunks: int
    missing: set[int]
    failures: int = 0
    progress_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def expected_size(self, index: int) -> int:
        return CHUNK_SIZE if index < self.chunks - 1 else self.size - CHUNK_SIZE * (self.chunks - 1)


class Fetcher:
    """Tracks clips being downloaded; calls `on_done(sha256, ok)` when one is verified or lost."""

    def __init__(
        self,
        store: NodeStore,
        link: MqttLink,
        topics: Topics,
        on_done: OnDone,
        *,
        refetch_after: float = 15.0,
    ) -> None:
        self.store = store
        self.link = link
        self.topics = topics
        self.on_done = on_done
        self.refetch_after = refetch_after
        self.active: dict[str, Fetch] = {}
        self.ready: set[str] = set()  # clips verified on disk

    async def need(self, item: PlaylistItem) -> None:
        """Make sure `item`'s clip is on disk or on its way."""
        sha = item.sha256
        if sha in self.ready or sha in self.active:
            return
        if await asyncio.to_thread(self.store.has_clip, sha):
            self.ready.add(sha)
            return
        missing = await asyncio.to_thread(self.store.missing_chunks, sha, item.chunks)
        fetch = Fetch(sha, item.bytes, item.chunks, set(missing))
        self.active[sha] = fetch
        if missing:
            log.info("fetching clip %s: %d of %d chunks", sha[:12], len(missing), item.chunks)
            await self._subscribe(fetch)
        else:
            await self._complete(fetch)

    async def on_chunk(self, sha256: str, index: int, payload: bytes) -> None:
        fetch = self.active.get(sha256)
        if fetch is None or index not in fetch.missing:
            return  # not wanted (already written, or a clip nobody needs any more)
        if len(payload) != fetch.expected_size(index):
            log.warning(
                "clip %s chunk %d has %d bytes, expected %d; ignored",
                sha256[:12],
                index,
                len(payload),
                fetch.expected_size(index),
            )
            return
        await asyncio.to_thread(self.store.write_chunk, sha256, index, payload)
        fetch.missing.discard(index)
        fetch.progress_at = asyncio.get_running_loop().time()
        if not fetch.missing:
            await self._complete(fetch)

    async def resubscribe(self, *, stalled_only: bool = False) -> None:
        """After a reconnect (the broker may have lost the session), or for stalled fetches."""
        now = asyncio.get_running_loop().time()
        for fetch in list(self.active.values()):
            if fetch.missing and (not stalled_only or now - fetch.progress_at > self.refetch_after):
                fetch.progress_at = now
                await self._subscribe(fetch)

    async def _subscribe(self, fetch: Fetch) -> None:
        topics = [self.topics.audio(fetch.sha256, i) for i in sorted(fetch.missing)]
        try:
            await self.link.subscribe(topics)
        except LinkError as exc:
            log.info("clip %s: subscribe deferred until reconnect: %s", fetch.sha256[:12], exc)

    async def _complete(self, fetch: Fetch) -> None:
        ok = await asyncio.to_thread(self.store.assemble, fetch.sha256, fetch.size, fetch.chunks)
        if ok:
            del self.active[fetch.sha256]
            self.ready.add(fetch.sha256)
            await self._unsubscribe(fetch)
            await self.on_done(fetch.sha256, ok=True)
            return
        fetch.failures += 1
        if fetch.failures >= MAX_ASSEMBLY_FAILURES:
            del self.active[fetch.sha256]
            await self._unsubscribe(fetch)
            await self.on_done(fetch.sha256, ok=False)
            return
        fetch.missing = set(range(fetch.chunks))
        await self._subscribe(fetch)  # a subscribe resends the retained chunks

    async def _unsubscribe(self, fetch: Fetch) -> None:
        try:
            await self.link.unsubscribe(
                [self.topics.audio(fetch.sha256, i) for i in range(fetch.chunks)]
            )
        except LinkError as exc:
            log.debug("clip %s: unsubscribe skipped: %s", fetch.sha256[:12], exc)
