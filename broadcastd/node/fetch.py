"""Resumable audio download over retained chunk topics, a window at a time, most urgent first.

Chunks are asked for by their exact topics (`audio/<sha>/<i>`), never with `audio/<sha>/+`: a
wildcard makes the broker queue every remaining chunk at once, and everything published for
the node afterwards (an emergency's playlist, its audio, the PUBACK of an ack) waits behind
them. Instead each lane (node.lanes) keeps only its window of chunks asked for and asks for the
next as each arrives, so a restart or a reconnect re-transfers nothing already written, and a
more urgent clip takes over the link within a chunk or two: only the fetches of the most urgent
rank still incomplete are asked for (a routine download waits while an emergency or `priority`
clip is fetched, and resumes where it stopped).

Chunks are written as they arrive (PartialClip.write, on the loop: a page-cache write is cheaper
than a hop to a worker thread); the one blocking step, verifying and syncing the finished clip,
runs in a thread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from broadcastd.errors import LinkError
from broadcastd.node.lanes import EMERGENCY_RANK, LinkMeter
from broadcastd.protocol import CHUNK_SIZE

if TYPE_CHECKING:
    from collections.abc import Container, Coroutine

    from broadcastd.node.partial import PartialClip
    from broadcastd.node.store import NodeStore
    from broadcastd.protocol import PlaylistItem, Topics
    from broadcastd.transport.link import MqttLink

log = logging.getLogger(__name__)


class OnDone(Protocol):
    async def __call__(self, sha256: str, *, ok: bool) -> None: ...


MAX_ASSEMBLY_FAILURES = 3
REFETCH_AFTER_S = 15.0  # a lane without a chunk this long, with chunks asked for, asks again
NORMAL_RANK = 2
# A SUBACK is waited for this many stall timeouts: on a link stalled for seconds an unanswered
# SUBSCRIBE is usually answered late, not lost, and the lane is not blocked meanwhile.
SUBACK_WAIT = 2


@dataclass(eq=False)
class Lane:
    """One connection chunks are fetched on, and the chunks asked for on it."""

    name: str
    link: MqttLink
    persistent: bool  # the broker keeps its session: subscriptions may outlive a crashed run
    asked: dict[tuple[str, int], float] = field(default_factory=dict)  # chunk -> asked at
    progress_at: float = 0.0


@dataclass(slots=True)
class Fetch:
    sha256: str
    size: int
    chunks: int
    part: PartialClip
    rank: int
    order: int  # first needed: fetches of one rank are served in the order playlists name them
    failures: int = 0
    resumed: bool = False  # chunks were on disk: an earlier run's filters may still be subscribed
    topics: dict[str, set[str]] = field(default_factory=dict)  # lane name -> topics subscribed

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
    """Tracks clips being downloaded; calls `on_done(sha256, ok)` when one is verified or lost.

    `link` is the control lane; `bulk` (default: the control lane too) carries every clip not
    needed by a live emergency."""

    def __init__(  # noqa: PLR0913 - the lanes, the store and the stall timeout, injected
        self,
        store: NodeStore,
        link: MqttLink,
        topics: Topics,
        on_done: OnDone,
        *,
        bulk: MqttLink | None = None,
        refetch_after: float = REFETCH_AFTER_S,
    ) -> None:
        self.store = store
        self.topics = topics
        self.on_done = on_done
        self.refetch_after = refetch_after
        self.control = Lane("control", link, persistent=True)
        self.bulk = Lane("bulk", bulk, persistent=False) if bulk is not None else self.control
        self.meter = LinkMeter(lambda: asyncio.get_running_loop().time())
        self.active: dict[str, Fetch] = {}
        self.ready: set[str] = set()  # clips verified on disk
        self.received = 0  # chunk bytes received, written or not
        self.duplicates = 0  # chunks received that were already written: bytes sent twice
        self._order = itertools.count()
        self._requests: set[asyncio.Task[None]] = set()  # SUBSCRIBEs and UNSUBSCRIBEs in flight

    @property
    def lanes(self) -> tuple[Lane, ...]:
        return (self.control,) if self.bulk is self.control else (self.control, self.bulk)

    def lane_of(self, fetch: Fetch) -> Lane:
        return self.control if fetch.rank == EMERGENCY_RANK else self.bulk

    async def need(self, item: PlaylistItem, rank: int = NORMAL_RANK) -> None:
        """Make sure `item`'s clip is on disk or on its way, at least as urgently as `rank`."""
        sha = item.sha256
        fetch = self.active.get(sha)
        if fetch is not None:
            if rank < fetch.rank:
                fetch.rank = rank  # now wanted by a more urgent playlist: it jumps the queue
                await self.pump()
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
        fetch = Fetch(
            sha, item.bytes, item.chunks, part, rank, next(self._order), resumed=bool(part.present)
        )
        self.active[sha] = fetch
        missing = len(fetch.missing)
        if missing:
            log.info(
                'fetching clip %s "%s": %d of %d chunks', sha[:12], item.title, missing, item.chunks
            )
            await self.pump()
        else:
            await self._complete(fetch)

    async def on_chunk(self, sha256: str, index: int, payload: bytes) -> None:
        self.received += len(payload)
        fetch = self.active.get(sha256)
        asked = [lane for lane in self.lanes if (sha256, index) in lane.asked]
        now = asyncio.get_running_loop().time()
        for lane in asked:
            self.meter.delivered(len(payload), lane.asked.pop((sha256, index)))
            lane.progress_at = now
        if fetch is None or index >= fetch.chunks:
            return  # a clip nobody needs any more
        if index in fetch.part.present:
            self.duplicates += 1
            return
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
        if fetch.complete:
            await self._complete(fetch)
        else:
            await self.pump()

    async def pump(self) -> None:
        """Ask each lane for chunks until its window is full, most urgent rank first; fetches of
        a less urgent rank wait until every more urgent one is complete."""
        waiting = [f for f in self.active.values() if not f.complete]
        if not waiting:
            return
        top = min(f.rank for f in waiting)
        window = self.meter.window()
        for lane in self.lanes:
            room = window - len(lane.asked)
            if room > 0:
                wanted = self._next_chunks(lane, top, room)
                if wanted:
                    await self._ask(lane, wanted)

    def _next_chunks(self, lane: Lane, rank: int, room: int) -> list[tuple[Fetch, int]]:
        """Up to `room` chunks nobody has asked for yet, of `lane`'s fetches of `rank`, in the
        order the fetches began and the chunks play."""
        wanted: list[tuple[Fetch, int]] = []
        for fetch in sorted(self.active.values(), key=lambda f: f.order):
            if fetch.rank != rank or self.lane_of(fetch) is not lane:
                continue
            for index in fetch.missing:
                if len(wanted) == room:
                    return wanted
                if all((fetch.sha256, index) not in other.asked for other in self.lanes):
                    wanted.append((fetch, index))
        return wanted

    async def _ask(self, lane: Lane, wanted: list[tuple[Fetch, int]]) -> None:
        """Mark `wanted` asked on `lane` and send the SUBSCRIBE. Its SUBACK is waited for in a
        task of its own: this runs in the link's message handler, which must go on taking
        chunks (and must let the link reconnect) while a SUBACK is a round trip away."""
        now = asyncio.get_running_loop().time()
        idle = not lane.asked  # a SUBACK with nothing queued ahead of it times the path alone
        if idle:
            lane.progress_at = now
        filters = []
        for fetch, index in wanted:
            lane.asked[fetch.sha256, index] = now
            topic = self.topics.audio(fetch.sha256, index)
            fetch.topics.setdefault(lane.name, set()).add(topic)
            filters.append(topic)
        self._background(self._subscribe(lane, wanted, filters, now, idle=idle))

    async def _subscribe(
        self,
        lane: Lane,
        wanted: list[tuple[Fetch, int]],
        filters: list[str],
        sent: float,
        *,
        idle: bool,
    ) -> None:
        try:
            await lane.link.subscribe(filters, timeout=self.refetch_after * SUBACK_WAIT)
        except LinkError as exc:
            if lane.link.connected.is_set():
                # Sent but unanswered (a stalled radio link): the broker may still honour it, so
                # the chunks stay asked; asking now would have them sent twice. The stall check
                # asks again if they never come.
                log.info("%s lane: subscribe unanswered: %s", lane.name, exc)
                return
            for fetch, index in wanted:
                if lane.asked.get((fetch.sha256, index)) == sent:  # not asked anew meanwhile
                    del lane.asked[fetch.sha256, index]  # asked again once reconnected
            log.info("%s lane: subscribe deferred until reconnect: %s", lane.name, exc)
            return
        if idle:
            self.meter.round_trip(asyncio.get_running_loop().time() - sent)

    def _background(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job)
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def reconnected(self, lane: Lane | None = None) -> None:
        """After a (re)connect of `lane` (default: every lane): what was asked for on it may be
        lost with the old connection, so it is asked for again."""
        for each in self.lanes if lane is None else (lane,):
            each.asked.clear()
        await self.pump()

    async def resubscribe(self, *, stalled_only: bool = False) -> None:
        """Ask again for what a lane asked for and never got: after a reconnect (the broker may
        have lost the session) or, `stalled_only`, on lanes without a chunk for a while."""
        now = asyncio.get_running_loop().time()
        for lane in self.lanes:
            if lane.asked and (not stalled_only or now - lane.progress_at > self.refetch_after):
                stale = [
                    (self.active[sha], index)
                    for sha, index in lane.asked
                    if sha in self.active and index not in self.active[sha].part.present
                ]
                lane.asked.clear()
                log.info("%s lane: asking again for %d chunks", lane.name, len(stale))
                if stale:
                    await self._ask(lane, stale)
        await self.pump()

    def stall_check_in(self) -> float | None:
        """Seconds until a lane waiting for chunks counts as stalled; None if none waits."""
        waiting = [lane.progress_at for lane in self.lanes if lane.asked]
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
        await self.pump()

    def close(self) -> None:
        """Close the open partial files (the agent is going away; the downloads resume later)."""
        for task in self._requests:
            task.cancel()
        for fetch in self.active.values():
            fetch.part.close()

    async def _complete(self, fetch: Fetch) -> None:
        ok = await asyncio.to_thread(self.store.finish, fetch.part, fetch.size)
        if ok:
            log.info("clip %s fetched and verified (%d bytes)", fetch.sha256[:12], fetch.size)
            del self.active[fetch.sha256]
            self.ready.add(fetch.sha256)
            await self.on_done(fetch.sha256, ok=True)
            await self.pump()  # the next download starts before this one's filters are dropped
            await self._unsubscribe(fetch)
            return
        fetch.failures += 1
        if fetch.failures >= MAX_ASSEMBLY_FAILURES:
            del self.active[fetch.sha256]
            await self.on_done(fetch.sha256, ok=False)
            await self._unsubscribe(fetch)
            await self.pump()
            return
        part = self.store.open_partial(fetch.sha256, fetch.chunks)
        if part is None:  # verified meanwhile by an earlier run's worker thread
            del self.active[fetch.sha256]
            self.ready.add(fetch.sha256)
            await self.on_done(fetch.sha256, ok=True)
            await self.pump()
            return
        fetch.part = part
        for lane in self.lanes:
            for key in [k for k in lane.asked if k[0] == fetch.sha256]:
                del lane.asked[key]
        await self._unsubscribe(fetch)  # subscribed again chunk by chunk: each is sent anew
        await self.pump()

    async def _unsubscribe(self, fetch: Fetch) -> None:
        for lane in self.lanes:
            for key in [k for k in lane.asked if k[0] == fetch.sha256]:
                del lane.asked[key]
            filters = fetch.topics.pop(lane.name, set())
            if fetch.resumed and lane.persistent:
                # A crashed run's subscriptions live on in the persistent session, including
                # the `+` filter agents before the window subscribed with.
                filters.add(self.topics.audio_clip_filter(fetch.sha256))
                filters.update(self.topics.audio(fetch.sha256, i) for i in range(fetch.chunks))
            if filters:
                self._background(self._drop(lane, fetch.sha256, sorted(filters)))

    async def _drop(self, lane: Lane, sha256: str, filters: list[str]) -> None:
        try:
            # As long as a SUBACK may take: an UNSUBACK given up on during a radio stall still
            # arrives, and aiomqtt logs it as an error ("Unexpected message ID").
            await lane.link.unsubscribe(filters, timeout=self.refetch_after * SUBACK_WAIT)
        except LinkError as exc:
            log.debug("clip %s: unsubscribe skipped: %s", sha256[:12], exc)
