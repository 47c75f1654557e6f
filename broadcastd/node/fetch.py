"""Resumable audio download over retained chunk topics.

A clip with nothing on disk is fetched with one `audio/<sha>/+` filter; a resumed one with the
exact topics of the chunks it still lacks (all in one SUBSCRIBE), so a restart on a weak 3G link
re-transfers nothing it already wrote. Chunks are written as they arrive (PartialClip.write, on
the loop: a page-cache write is cheaper than a hop to a worker thread); the one blocking step,
verifying and syncing the finished clip, runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from broadcastd.errors import LinkError
from broadcastd.protocol import CHUNK_SIZE

if TYPE_CHECKING:
    from collections.abc import Container

    from broadcastd.node.partial import PartialClip
    from broadcastd.node.store import NodeStore
    from broadcastd.protocol import PlaylistItem, Topics
    from broadcastd.transport.link import MqttLink

log = logging.getLogger(__name__)


class OnDone(Protocol):
    async def __call__(self, sha256: str, *, ok: bool) -> None: ...


MAX_ASSEMBLY_FAILURES = 3
REFETCH_AFTER_S = 15.0  # a download without progress this long is asked for again


@dataclass(slots=True)
class Fetch:
    sha256: str
    size: int
    chunks: int
    part: PartialClip
    failures: int = 0
    resumed: bool = False  # chunks were on disk: an earlier run's filters may still be subscribed
    filters: set[str] = field(default_factory=set)  # every filter subscribed for this clip
    progress_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    @property
    def complete(self) -> bool:
        """Every chunk written (not yet verified)."""
        return len(self.part.present) == self.chunks

    @property
    def missing(self) -> list[int]:
        return [i for i in range(self.chunks) if i not in self.part.present]

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
        refetch_after: float = REFETCH_AFTER_S,
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
        if sha in self.active:
            return
        # On the loop, not in a worker thread: a create and a read, no fsync, so a hop would cost
        # more than it saves, and here it cannot queue behind other threads' fsyncs. Asked even
        # for a clip verified before: that marks it used (see NodeStore.prune), and one deleted
        # behind our back is fetched again.
        part = self.store.open_partial(sha, item.chunks)
        if part is None:
            self.ready.add(sha)
            return
        self.ready.discard(sha)
        fetch = Fetch(sha, item.bytes, item.chunks, part, resumed=bool(part.present))
        self.active[sha] = fetch
        missing = len(fetch.missing)
        if missing:
            log.info(
                'fetching clip %s "%s": %d of %d chunks', sha[:12], item.title, missing, item.chunks
            )
            await self._subscribe(fetch)
        else:
            await self._complete(fetch)

    async def on_chunk(self, sha256: str, index: int, payload: bytes) -> None:
        fetch = self.active.get(sha256)
        if fetch is None or index >= fetch.chunks or index in fetch.part.present:
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
        fetch.part.write(index, payload)
        fetch.progress_at = asyncio.get_running_loop().time()
        if fetch.complete:
            await self._complete(fetch)

    async def resubscribe(self, *, stalled_only: bool = False) -> None:
        """After a reconnect (the broker may have lost the session), or for stalled fetches."""
        if not self.active:
            return
        now = asyncio.get_running_loop().time()
        for fetch in list(self.active.values()):
            if not fetch.complete and (
                not stalled_only or now - fetch.progress_at > self.refetch_after
            ):
                fetch.progress_at = now
                await self._subscribe(fetch)

    def stall_check_in(self) -> float | None:
        """Seconds until the oldest download without progress counts as stalled; None if none."""
        waiting = [f.progress_at for f in self.active.values() if not f.complete]
        if not waiting:
            return None
        return min(waiting) + self.refetch_after - asyncio.get_running_loop().time()

    async def abandon(self, keep: Container[str]) -> None:
        """Stop downloading clips not in `keep` (no playlist needs them any more). What they
        wrote stays on disk: resumed should a playlist need the clip again, else pruned with the
        cache (NodeStore.prune). A download with every chunk written is being verified: left."""
        for fetch in [f for f in self.active.values() if f.sha256 not in keep and not f.complete]:
            del self.active[fetch.sha256]
            fetch.part.close()
            log.info("clip %s: download stopped, no playlist needs it", fetch.sha256[:12])
            await self._unsubscribe(fetch)

    def close(self) -> None:
        """Close the open partial files (the agent is going away; the downloads resume later)."""
        for fetch in self.active.values():
            fetch.part.close()

    async def _subscribe(self, fetch: Fetch) -> None:
        if fetch.part.present:
            # Resuming: only what is missing; `+` would make the broker resend every chunk.
            filters = [self.topics.audio(fetch.sha256, i) for i in fetch.missing]
        else:
            filters = [self.topics.audio_clip_filter(fetch.sha256)]
        fetch.filters.update(filters)
        try:
            await self.link.subscribe(filters)
        except LinkError as exc:
            log.info("clip %s: subscribe deferred until reconnect: %s", fetch.sha256[:12], exc)

    async def _complete(self, fetch: Fetch) -> None:
        ok = await asyncio.to_thread(self.store.finish, fetch.part, fetch.size)
        if ok:
            log.info("clip %s fetched and verified (%d bytes)", fetch.sha256[:12], fetch.size)
            del self.active[fetch.sha256]
            self.ready.add(fetch.sha256)
            await self.on_done(fetch.sha256, ok=True)
            await self._unsubscribe(fetch)  # after the ack is queued: it need not wait for this
            return
        fetch.failures += 1
        if fetch.failures >= MAX_ASSEMBLY_FAILURES:
            del self.active[fetch.sha256]
            await self.on_done(fetch.sha256, ok=False)
            await self._unsubscribe(fetch)
            return
        part = self.store.open_partial(fetch.sha256, fetch.chunks)
        if part is None:  # verified meanwhile by an earlier run's worker thread
            del self.active[fetch.sha256]
            self.ready.add(fetch.sha256)
            await self.on_done(fetch.sha256, ok=True)
            return
        fetch.part = part
        await self._subscribe(fetch)  # a subscribe resends the retained chunks

    async def _unsubscribe(self, fetch: Fetch) -> None:
        filters = set(fetch.filters)
        if fetch.resumed:  # a crashed run's subscriptions live on in the persistent session
            filters.add(self.topics.audio_clip_filter(fetch.sha256))
            filters.update(self.topics.audio(fetch.sha256, i) for i in range(fetch.chunks))
        try:
            await self.link.unsubscribe(sorted(filters))
        except LinkError as exc:
            log.debug("clip %s: unsubscribe skipped: %s", fetch.sha256[:12], exc)
