"""The node's lanes and window (node.lanes, node.fetch) without a broker: what is asked for, on
which connection, in which order, and that nothing is asked for twice."""

from __future__ import annotations

import asyncio
import hashlib
import os

from broadcastd import protocol
from broadcastd.node.fetch import Fetcher
from broadcastd.node.lanes import MAX_WINDOW, MIN_WINDOW, LinkMeter, bulk_settings
from broadcastd.node.store import NodeStore
from broadcastd.transport.link import LinkSettings

CHUNK = protocol.CHUNK_SIZE
TOPICS = protocol.Topics("c")


class FakeLink:
    """Records what the fetcher subscribes to; the test delivers the chunks itself."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.dropped: list[str] = []

    async def subscribe(self, filters: list[str], *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - MqttLink's signature
        assert timeout > 0
        self.asked += filters

    async def unsubscribe(self, filters: list[str], *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - MqttLink's signature
        assert timeout > 0
        self.dropped += filters

    async def take(self) -> list[tuple[str, int]]:
        """What was asked for since the last take, as (sha, index), once the fetcher's
        SUBSCRIBE tasks have run."""
        for _ in range(3):
            await asyncio.sleep(0)
        out = [(t.split("/")[-2][:4], int(t.split("/")[-1])) for t in self.asked]
        self.asked.clear()
        return out


class Clip:
    def __init__(self, chunks: int) -> None:
        self.data = os.urandom(CHUNK * (chunks - 1) + 1000)
        self.sha = hashlib.sha256(self.data).hexdigest()
        self.item = protocol.PlaylistItem(
            sha256=self.sha,
            bytes=len(self.data),
            chunks=chunks,
            duration_ms=1000,
            title="t",
            lang="vi",
            announcement="a",
        )

    def chunk(self, index: int) -> bytes:
        return self.data[index * CHUNK : (index + 1) * CHUNK]


def fetcher(tmp_path) -> tuple[Fetcher, FakeLink, FakeLink, list[str]]:
    store = NodeStore(tmp_path / "cache")
    store.open()
    control, bulk = FakeLink(), FakeLink()
    done: list[str] = []

    async def on_done(sha256: str, *, ok: bool) -> None:
        assert ok
        done.append(sha256)

    f = Fetcher(store, control, TOPICS, on_done, bulk=bulk)  # type: ignore[arg-type]
    return f, control, bulk, done


def test_the_window_is_the_bandwidth_delay_product_plus_one_chunk_within_bounds():
    t = [0.0]
    meter = LinkMeter(lambda: t[0])
    assert meter.window() == MIN_WINDOW  # nothing measured yet
    meter.round_trip(0.4)
    for _ in range(3):  # 256 kbit/s: a chunk every ~2 s
        t[0] += CHUNK / 32_000
        meter.delivered(CHUNK, asked_at=0.0)
    assert meter.window() == MIN_WINDOW  # 12.8 KB in flight over 400 ms: two chunks suffice
    fast = LinkMeter(lambda: t[0])
    fast.round_trip(0.3)
    for _ in range(3):  # 10 Mbit/s x 300 ms = 375 KB: ~6 chunks to keep the link busy
        t[0] += CHUNK / 1_250_000
        fast.delivered(CHUNK, asked_at=0.0)
    assert fast.window() == 7
    fast.round_trip(0.0)
    fast.round_trip(30.0)  # one inflated sample: the path is the least of them
    assert fast.window() == MIN_WINDOW
    huge = LinkMeter(lambda: t[0])
    huge.round_trip(5.0)
    t[0] += 0.001
    huge.delivered(CHUNK, asked_at=t[0] - 0.001)
    assert huge.window() == MAX_WINDOW


def test_the_bulk_lane_is_its_own_client_without_session_will_or_subscriptions():
    control = LinkSettings.from_url(
        "mqtts://b:8883",
        client_id="broadcastd-node-n1",
        username="n1",
        password="pw",  # noqa: S106 - a test value
        will=("t", b"offline"),
        online=("t", b"online"),
        subscriptions=(("p", 1),),
    )
    bulk = bulk_settings(control)
    assert bulk.client_id == "broadcastd-node-n1-bulk"
    assert (bulk.username, bulk.password, bulk.host) == ("n1_bulk", "pw", "b")
    assert bulk.will is None
    assert bulk.online is None
    assert bulk.subscriptions == ()
    assert bulk.session_expiry == 0


async def test_a_routine_clip_is_fetched_a_window_at_a_time_on_the_bulk_lane(tmp_path):
    f, control, bulk, done = fetcher(tmp_path)
    clip = Clip(5)
    await f.need(clip.item, rank=2)
    sha = clip.sha[:4]
    assert await bulk.take() == [(sha, 0), (sha, 1)]
    assert await control.take() == []
    for index in range(5):
        await f.on_chunk(clip.sha, index, clip.chunk(index))
        expected = [(sha, index + 2)] if index + 2 < 5 else []
        assert await bulk.take() == expected
    assert done == [clip.sha]
    assert f.duplicates == 0
    await bulk.take()
    assert sorted(bulk.dropped) == sorted(TOPICS.audio(clip.sha, i) for i in range(5))


async def test_an_emergency_clip_preempts_a_routine_download_which_resumes_after(tmp_path):
    f, control, bulk, done = fetcher(tmp_path)
    routine, urgent = Clip(6), Clip(2)
    r, u = routine.sha[:4], urgent.sha[:4]
    await f.need(routine.item, rank=2)
    assert await bulk.take() == [(r, 0), (r, 1)]
    await f.need(urgent.item, rank=0)  # a live emergency: on the control lane, at once
    assert await control.take() == [(u, 0), (u, 1)]
    await f.on_chunk(routine.sha, 0, routine.chunk(0))  # already on its way: written...
    assert await bulk.take() == []  # ...but nothing more of the routine clip is asked for
    await f.on_chunk(urgent.sha, 0, urgent.chunk(0))
    await f.on_chunk(urgent.sha, 1, urgent.chunk(1))
    assert done == [urgent.sha]
    assert await bulk.take() == [(r, 2)]  # resumed where it stopped; chunk 1 is still on its way
    for index in range(1, 6):
        await f.on_chunk(routine.sha, index, routine.chunk(index))
    assert done == [urgent.sha, routine.sha]
    assert f.duplicates == 0


async def test_a_priority_clip_goes_first_on_the_bulk_lane_and_a_reconnect_asks_again(tmp_path):
    f, control, bulk, _ = fetcher(tmp_path)
    routine, notice = Clip(4), Clip(3)
    r, p = routine.sha[:4], notice.sha[:4]
    await f.need(routine.item, rank=2)
    await f.need(notice.item, rank=1)
    assert await bulk.take() == [(r, 0), (r, 1)]  # asked before the notice came
    await f.on_chunk(routine.sha, 0, routine.chunk(0))
    assert await bulk.take() == [(p, 0)]
    await f.reconnected(f.bulk)  # the bulk connection dropped: what it had asked is gone
    assert await bulk.take() == [(p, 0), (p, 1)]
    assert await control.take() == []
