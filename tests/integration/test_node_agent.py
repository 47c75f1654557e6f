"""The speaker agent against a real mosquitto: verify, fetch, play once, resume, obey controls."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.clock import FakeClock
from support.envelopes import signed, signed_playlist

from broadcastd import protocol
from broadcastd.errors import LinkError
from broadcastd.node.agent import NodeAgent
from broadcastd.node.player import NullPlayer
from broadcastd.node.settings import NodeConfig
from broadcastd.node.store import NodeStore
from broadcastd.transport.link import LinkSettings, MqttLink

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
HAMLET = "ban-chuong"


async def eventually(predicate, within: float = 10.0) -> None:
    """Wait for state fed by the broker or the agent's own tasks, bounded in time."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the state has no event the test could await
            await asyncio.sleep(0.01)


async def mosquitto_pub(broker, *args: str) -> None:
    """Inject a message with the real mosquitto_pub CLI, as anyone on the network could."""
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), *args
    )
    assert await asyncio.wait_for(proc.wait(), 10) == 0


@dataclass
class Controller:
    """The test plays the daemon: signs, publishes audio and playlists, collects node messages."""

    link: MqttLink
    topics: protocol.Topics
    commune: str
    key: Ed25519PrivateKey
    seen: list[tuple[str, bytes]] = field(default_factory=list)
    seq: int = 0
    numbered: set[tuple[str, int]] = field(default_factory=set)  # (node, n) acks handled
    receipts: set[asyncio.Task[None]] = field(default_factory=set)

    async def on_message(self, topic: str, payload: bytes, _props: object) -> None:
        """Keep each message; confirm numbered acks as the daemon does, once each."""
        route = self.topics.parse(topic)
        n = protocol.parse_ack(payload).n if route and route[0] == "node_ack" else None
        if route is None or n is None:
            self.seen.append((topic, payload))
            return
        node = route[1]
        if (node, n) not in self.numbered:
            self.numbered.add((node, n))
            self.seen.append((topic, payload))
        task = asyncio.create_task(self._receipt(node, n))
        self.receipts.add(task)
        task.add_done_callback(self.receipts.discard)

    async def _receipt(self, node: str, n: int) -> None:
        receipt = protocol.receipt_payload(self.commune, node, [n], T0, self.key)
        with contextlib.suppress(LinkError):  # closing: the node sends the ack again later
            await self.link.publish(self.topics.receipt(node), receipt)

    def acks(self, playlist: str | None = None) -> list[tuple[str, str, str]]:
        out = []
        for topic, payload in self.seen:
            if topic.endswith("/ack"):
                a = protocol.parse_ack(payload)
                if playlist is None or a.playlist == playlist:
                    out.append((a.playlist, a.status, a.detail))
        return out

    def statuses(self, playlist: str) -> list[str]:
        return [s for _, s, _ in self.acks(playlist)]

    async def wait_ack(self, playlist: str, status: str, within: float = 10.0) -> str:
        """The detail of the first `status` ack for `playlist`."""
        found: list[str] = []

        def seen() -> bool:
            found.extend(d for _, s, d in self.acks(playlist) if s == status)
            return bool(found)

        await eventually(seen, within)
        return found[0]

    async def publish_clip(
        self, data: bytes, indexes: range | None = None
    ) -> protocol.PlaylistItem:
        sha = hashlib.sha256(data).hexdigest()
        chunks = list(protocol.iter_chunks(data))
        for i in indexes if indexes is not None else range(len(chunks)):
            await self.link.publish(self.topics.audio(sha, i), chunks[i], retain=True, expiry=600)
        return protocol.PlaylistItem(sha, len(data), len(chunks), 1000, "Tiêm phòng", "vi", "a1")

    def playlist(
        self,
        pid: str,
        items: list[protocol.PlaylistItem],
        *,
        key: Ed25519PrivateKey | None = None,
        **over: Any,
    ) -> bytes:
        self.seq += 1
        fields: dict[str, Any] = {
            "commune": self.commune,
            "hamlet": HAMLET,
            "play_at": int(T0) + 60,
            "expires_at": int(T0) + 1260,
            "issued_at": int(T0) - 1800 + self.seq,
            "seq": self.seq,
        }
        fields.update(over)
        return signed_playlist(key or self.key, playlist_id=pid, items=items, **fields)

    def control(self, cid: str, action: str, **over: Any) -> bytes:
        self.seq += 1
        fields: dict[str, Any] = {
            "commune": self.commune,
            "hamlet": HAMLET,
            "issued_at": int(T0),
            "expires_at": int(T0) + 600,
            "seq": self.seq,
        }
        fields.update(over)
        return signed(self.key, protocol.control_envelope(control_id=cid, action=action, **fields))

    async def send_playlist(self, payload: bytes, *, retain: bool = True) -> None:
        await self.link.publish(self.topics.playlist(HAMLET), payload, retain=retain, expiry=3600)

    async def send_control(self, payload: bytes) -> None:
        await self.link.publish(self.topics.control(HAMLET), payload)


@pytest.fixture
async def controller(mosquitto):
    commune = f"t-{uuid.uuid4().hex[:10]}"  # every test has its own topic tree
    topics = protocol.Topics(commune)
    ctl = Controller(None, topics, commune, Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    ctl.link = MqttLink(
        LinkSettings.from_url(
            mosquitto.url,
            client_id=f"ctl-{commune}",
            subscriptions=((topics.nodes_filter(), 1),),
        ),
        ctl.on_message,
    )
    task = asyncio.create_task(ctl.link.run())
    await ctl.link.wait_connected(5)
    yield ctl
    await asyncio.wait_for(ctl.link.close(), 5)
    await task


def node_config(tmp_path, mosquitto, ctl: Controller, **over: object) -> NodeConfig:
    doc: dict[str, object] = {
        "node": {"id": "bc-01", "hamlet": HAMLET, "commune": ctl.commune},
        "broker": {"url": mosquitto.url},
        "public_key": protocol.public_key_b64(ctl.key),
        "cache_dir": str(tmp_path / "cache"),
        "player": None,
        "heartbeat": "0.2s",
    }
    doc.update(over)
    return NodeConfig.model_validate(doc)


@contextlib.asynccontextmanager
async def running(agent: NodeAgent):
    task = asyncio.create_task(agent.run())
    try:
        await agent.link.wait_connected(5)
        yield task
    finally:
        if not task.done():
            agent.stop()
            await asyncio.wait_for(task, 10)


def make_agent(cfg: NodeConfig, clock: FakeClock, player: NullPlayer | None = None) -> NodeAgent:
    return NodeAgent(cfg, clock=clock, player=player or NullPlayer(clock=clock), tick=0.02)


async def test_plays_a_signed_playlist_once_at_play_at(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0)
    big, small = os.urandom(150_000), "xin chào".encode() * 10
    items = [await ctl.publish_clip(big), await ctl.publish_clip(small)]
    await ctl.send_playlist(ctl.playlist("noon-1", items))
    player = NullPlayer(clock=clock)
    agent = make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)
    async with running(agent):
        await ctl.wait_ack("noon-1", "ready")
        assert player.plays == []  # ready but not due: the speaker waits for its own clock
        clock.t = T0 + 60
        await ctl.wait_ack("noon-1", "played")
        assert ctl.statuses("noon-1") == ["received", "ready", "playing", "played"]
        assert [(p, s) for p, s, _ in player.plays] == [("noon-1", i.sha256) for i in items]
        assert player.volumes == [80, 80]
        clip = agent.store.clip_path(items[0].sha256)
        assert hashlib.sha256(clip.read_bytes()).hexdigest() == items[0].sha256
        assert not (tmp_path / "cache" / "partial" / items[0].sha256).exists()
        states = [json.loads(p) for t, p in ctl.seen if t == ctl.topics.node_state("bc-01")]
        assert states[0]["state"] == "online"
        beats = [t for t, _ in ctl.seen if t == ctl.topics.node_heartbeat("bc-01")]
        assert beats, "heartbeats are published while connected"
    states = [json.loads(p) for t, p in ctl.seen if t == ctl.topics.node_state("bc-01")]
    assert states[-1]["state"] == "offline"  # a clean stop says so, retained


async def test_a_signed_envelope_on_the_other_kinds_topic_is_malformed(
    tmp_path, mosquitto, controller
):
    ctl, clock = controller, FakeClock(T0 + 100)
    item = await ctl.publish_clip(b"audio" * 100)
    player = NullPlayer(clock=clock)
    agent = make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)
    async with running(agent):
        await ctl.send_playlist(ctl.control("stop-on-playlist", "stop"), retain=False)
        assert await ctl.wait_ack("stop-on-playlist", "rejected") == "malformed"
        await ctl.send_control(ctl.playlist("playlist-on-control", [item]))
        assert await ctl.wait_ack("playlist-on-control", "rejected") == "malformed"
        assert agent.rejected == {"malformed": 2}
        assert agent.store.state.controls == {}
        assert "playlist-on-control" not in agent.playlists.pending
    assert player.plays == []


async def test_hostile_envelopes_are_rejected_and_nothing_plays(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0 + 100)
    item = await ctl.publish_clip(b"audio" * 100)
    player = NullPlayer(clock=clock)
    agent = make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)
    unsigned = json.loads(ctl.playlist("unsigned", [item]))
    del unsigned["sig"]
    cases = [
        ("unsigned", protocol.encode(unsigned), "rejected", "unsigned"),
        (
            "forged",
            ctl.playlist("forged", [item], key=Ed25519PrivateKey.generate()),
            "rejected",
            "bad_signature",
        ),
        (
            "elsewhere",
            ctl.playlist("elsewhere", [item], hamlet="na-lay"),
            "rejected",
            "wrong_hamlet",
        ),
        (
            "other-commune",
            ctl.playlist("other-commune", [item], commune="sin-ho"),
            "rejected",
            "wrong_commune",
        ),
        ("stale", ctl.playlist("stale", [item], expires_at=int(T0) + 90), "expired", ""),
    ]
    async with running(agent):
        for pid, payload, status, reason in cases:
            await ctl.send_playlist(payload, retain=False)
            detail = await ctl.wait_ack(pid, status)
            assert reason in detail
        # A valid playlist, then an older one for the same slot (a replay of yesterday's, say).
        await ctl.send_playlist(ctl.playlist("new", [item], issued_at=int(T0) + 50))
        await ctl.wait_ack("new", "ready")
        await ctl.send_playlist(ctl.playlist("old", [item], issued_at=int(T0) + 10, seq=999))
        assert await ctl.wait_ack("old", "rejected") == "replay"
        await ctl.send_playlist(ctl.playlist("low-seq", [item], issued_at=int(T0) + 60, seq=1))
        assert await ctl.wait_ack("low-seq", "rejected") == "replay"
        # Injected with the real mosquitto_pub CLI, as an attacker on the network would.
        forged = json.loads(ctl.playlist("cli", [item], priority="emergency"))
        forged["items"][0]["title"] = "Sơ tán ngay"
        await mosquitto_pub(
            mosquitto,
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            ctl.topics.playlist(HAMLET),
            "-m",
            json.dumps(forged),
        )
        assert await ctl.wait_ack("cli", "rejected") == "bad_signature"
        junk = tmp_path / "junk.bin"
        junk.write_bytes(b"\x00\xff{garbage" + os.urandom(2000))
        await mosquitto_pub(mosquitto, "-t", ctl.topics.playlist(HAMLET), "-f", str(junk))
        assert await ctl.wait_ack("invalid-id", "rejected") == "malformed"
        # A forgery whose id is not an id (markup, escapes) is answered under the placeholder
        # too: the daemon refuses any ack naming something outside the id grammar.
        hostile = json.loads(ctl.playlist("x", [item]))
        hostile["id"] = "\x1b[2J[green]all speakers OK[/green]"
        await ctl.send_playlist(protocol.encode(hostile), retain=False)
        await eventually(lambda: len(ctl.acks("invalid-id")) == 2, 10)
        assert ctl.acks("invalid-id")[1] == ("invalid-id", "rejected", "bad_signature")
        clock.t = T0 + 200
        await ctl.wait_ack("new", "played")
    assert {p for p, _, _ in player.plays} == {"new"}
    assert agent.rejected["replay"] == 2


async def test_restart_with_the_same_cache_never_replays(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0 + 60)
    item = await ctl.publish_clip(os.urandom(70_000))
    await ctl.send_playlist(ctl.playlist("noon-1", [item]))  # stays retained
    cfg = node_config(tmp_path, mosquitto, ctl)
    first = NullPlayer(clock=clock)
    async with running(make_agent(cfg, clock, first)):
        await ctl.wait_ack("noon-1", "played")
    second = NullPlayer(clock=clock)
    async with running(make_agent(cfg, clock, second)):
        # The retained noon-1 arrives first; a later playlist is a barrier proving it was handled.
        await ctl.send_control(ctl.control("vol-1", "volume", value=30))
        await ctl.send_playlist(ctl.playlist("noon-2", [item], slot="afternoon"))
        await ctl.wait_ack("noon-2", "played")
    assert [p for p, _, _ in first.plays] == ["noon-1"]
    assert [p for p, _, _ in second.plays] == ["noon-2"]
    assert second.volumes == [30]
    assert ctl.statuses("noon-1") == ["received", "ready", "playing", "played"]


async def test_the_same_playlist_arriving_twice_at_once_plays_once(tmp_path, mosquitto, controller):
    """Restored from disk and retained on the broker, the same envelope can be handled twice
    concurrently; it must still play exactly once."""
    ctl, clock = controller, FakeClock(T0 + 60)
    item = await ctl.publish_clip(os.urandom(70_000))
    payload = ctl.playlist("noon-1", [item])
    player = NullPlayer(clock=clock)
    agent = make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)
    async with running(agent):
        await asyncio.gather(*(agent.playlists.on_playlist(payload) for _ in range(3)))
        await ctl.wait_ack("noon-1", "played")
        await asyncio.sleep(0.5)  # a second play would start here
    assert [p for p, _, _ in player.plays] == ["noon-1"]
    assert ctl.statuses("noon-1") == ["received", "ready", "playing", "played"]


async def test_a_crash_mid_download_resumes_with_only_missing_chunks(
    tmp_path, mosquitto, controller
):
    ctl, clock = controller, FakeClock(T0)
    data = os.urandom(1_000_000)  # 16 chunks
    item = await ctl.publish_clip(data, range(8))
    await ctl.send_playlist(ctl.playlist("noon-1", [item]))
    cfg = node_config(tmp_path, mosquitto, ctl)
    agent = make_agent(cfg, clock)
    task = asyncio.create_task(agent.run())
    await eventually(lambda: len(agent.store.missing_chunks(item.sha256, 16)) <= 8)
    task.cancel()  # a crash: no clean stop, the Last Will says offline
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert sorted(i for _, i in agent.store.chunks_written) == list(range(8))

    def last_state() -> str | None:
        states = [json.loads(p) for t, p in ctl.seen if t == ctl.topics.node_state("bc-01")]
        return states[-1]["state"] if states else None

    await eventually(lambda: last_state() == "offline")  # the Last Will, not a clean close
    assert "ready" not in ctl.statuses("noon-1")

    await ctl.publish_clip(data, range(8, 16))
    again = make_agent(cfg, clock)
    async with running(again):
        await ctl.wait_ack("noon-1", "ready")
        clock.t = T0 + 60
        await ctl.wait_ack("noon-1", "played")
    assert sorted(i for _, i in again.store.chunks_written) == list(range(8, 16))
    assert again.store.clip_path(item.sha256).read_bytes() == data


async def test_a_corrupt_clip_is_discarded_and_fetched_again(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0 + 60)
    data = os.urandom(100_000)
    item = await ctl.publish_clip(data)
    cfg = node_config(tmp_path, mosquitto, ctl)
    # A chunk left over from before, of the right size but the wrong bytes (a torn write).
    leftover = NodeStore(cfg.cache_dir)
    leftover.open()
    leftover.write_chunk(item.sha256, 0, b"\x00" * protocol.CHUNK_SIZE, item.chunks)
    player = NullPlayer(clock=clock)
    async with running(make_agent(cfg, clock, player)):
        await ctl.send_playlist(ctl.playlist("noon-1", [item]))
        await ctl.wait_ack("noon-1", "played")
    assert (tmp_path / "cache" / "clips" / f"{item.sha256}.bin").read_bytes() == data


async def test_offline_at_play_at_plays_late_once_before_expiry(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0 + 600)  # ten minutes after play_at, before expiry
    item = await ctl.publish_clip(b"late" * 1000)
    await ctl.send_playlist(ctl.playlist("noon-1", [item]))
    player = NullPlayer(clock=clock)
    async with running(make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)):
        assert await ctl.wait_ack("noon-1", "playing") == "late 540s"
        await ctl.wait_ack("noon-1", "played")
    assert len(player.plays) == 1


async def test_after_expiry_it_acks_expired_and_never_plays(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0 + 30)
    ready = await ctl.publish_clip(b"a" * 5000)
    missing = protocol.PlaylistItem("0" * 64, 10, 1, 10, "t", "vi", "a")  # audio never arrives
    player = NullPlayer(clock=clock)
    cfg = node_config(tmp_path, mosquitto, ctl)
    async with running(make_agent(cfg, clock, player)):
        await ctl.send_playlist(ctl.playlist("no-audio", [missing], play_at=int(T0) + 40))
        await ctl.wait_ack("no-audio", "received")
        clock.t = T0 + 1260
        assert await ctl.wait_ack("no-audio", "expired") == "audio incomplete at expiry"
        # Arriving after its window (the node was offline): expired, not played.
        await ctl.send_playlist(ctl.playlist("too-late", [ready], slot="afternoon"))
        await ctl.wait_ack("too-late", "expired")
    assert player.plays == []


async def test_emergency_interrupts_a_routine_bulletin(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0 + 60)
    routine = await ctl.publish_clip(b"r" * 3000)
    long_item = protocol.PlaylistItem(
        routine.sha256, routine.bytes, routine.chunks, 600_000, "dài", "vi", "long"
    )
    flood = await ctl.publish_clip("Lũ quét".encode() * 50)
    player = NullPlayer(speed=1.0, clock=clock)  # plays in real time: 10 minutes unless stopped
    async with running(make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)):
        await ctl.send_playlist(ctl.playlist("routine", [long_item]))
        await ctl.wait_ack("routine", "playing")
        await ctl.send_playlist(
            ctl.playlist("flood", [flood], slot="now", priority="emergency", play_at=int(T0) + 60)
        )
        await ctl.wait_ack("flood", "played", within=5)
        detail = await ctl.wait_ack("routine", "failed")
        assert detail == "interrupted by emergency flood"
    assert [p for p, _, _ in player.plays] == ["routine", "flood"]
    assert [p for p, _, _ in player.finished] == ["flood"]


async def test_stop_cancel_and_volume_controls(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0 + 60)
    clip = await ctl.publish_clip(b"c" * 3000)
    long_item = protocol.PlaylistItem(clip.sha256, clip.bytes, clip.chunks, 600_000, "t", "vi", "a")
    player = NullPlayer(speed=1.0, clock=clock)
    agent = make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)
    async with running(agent):
        await ctl.send_playlist(ctl.playlist("routine", [long_item]))
        await ctl.wait_ack("routine", "playing")
        # A forged stop is refused and the bulletin keeps playing.
        forged = json.loads(ctl.control("evil-stop", "stop"))
        forged["sig"] = protocol.sign(forged, Ed25519PrivateKey.generate())["sig"]
        await ctl.send_control(protocol.encode(forged))
        assert await ctl.wait_ack("evil-stop", "rejected") == "bad_signature"
        assert "failed" not in ctl.statuses("routine")

        await ctl.send_control(ctl.control("stop-1", "stop"))
        assert await ctl.wait_ack("routine", "failed") == "stopped by stop-1"

        await ctl.send_control(ctl.control("vol-1", "volume", value=35))
        await eventually(lambda: agent.volume == 35)

        def last_beat_volume() -> int | None:
            beats = [json.loads(p) for t, p in ctl.seen if t.endswith("/heartbeat")]
            return beats[-1]["volume"] if beats else None

        await eventually(lambda: last_beat_volume() == 35)  # the technician sees it too

        short = protocol.PlaylistItem(clip.sha256, clip.bytes, clip.chunks, 10, "t", "vi", "a")
        await ctl.send_playlist(
            ctl.playlist("later", [short], slot="afternoon", play_at=int(T0) + 300)
        )
        await ctl.wait_ack("later", "ready")
        await ctl.send_control(ctl.control("cancel-1", "cancel", target="later"))
        assert await ctl.wait_ack("later", "failed") == "cancelled by cancel-1"
        await ctl.send_playlist(
            ctl.playlist("evening", [short], slot="evening", play_at=int(T0) + 300)
        )
        clock.t = T0 + 300
        await ctl.wait_ack("evening", "played")
    assert [p for p, _, _ in player.plays] == ["routine", "evening"]
    assert player.volumes == [80, 35]
    saved = NodeStore(tmp_path / "cache")
    saved.open()
    assert saved.state.volume == 35
    assert "later" in saved.state.cancelled


async def test_a_volume_control_is_applied_acked_and_reported_only_where_meant(
    tmp_path, mosquitto, controller
):
    """Issue 17.5: the node applies a volume to the player and its heartbeats, acks it under the
    control's id, and ignores one naming only other speakers of its hamlet."""
    ctl, clock = controller, FakeClock(T0 + 60)
    clip = await ctl.publish_clip(b"v" * 3000)
    player = NullPlayer(clock=clock)
    agent = make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)
    async with running(agent):
        await ctl.send_control(ctl.control("vol-other", "volume", value=20, nodes=["bc-02"]))
        await ctl.send_control(ctl.control("vol-me", "volume", value=45, nodes=["bc-01", "bc-02"]))
        assert await ctl.wait_ack("vol-me", "received") == "volume 45"

        def last_beat_volume() -> int | None:
            beats = [json.loads(p) for t, p in ctl.seen if t.endswith("/heartbeat")]
            return beats[-1]["volume"] if beats else None

        await eventually(lambda: last_beat_volume() == 45)
        await ctl.send_playlist(ctl.playlist("noon-1", [clip]))
        await ctl.wait_ack("noon-1", "played")
        await ctl.send_control(ctl.control("stop-1", "stop"))
        assert await ctl.wait_ack("stop-1", "received") == "stop"
    assert ctl.statuses("vol-other") == []
    assert player.volumes == [45]


async def test_a_stop_holds_across_a_restart_and_only_newer_playlists_play(
    tmp_path, mosquitto, controller
):
    """Issue 17.1: a node that accepted a playlist, was offline during the stop and comes back
    (from its state file, with the stop retained on the broker) never plays it; the stopped-at
    watermark is persisted, so even the same envelope delivered again later is refused."""
    ctl, clock = controller, FakeClock(T0)
    item = await ctl.publish_clip(b"s" * 3000)
    noon = ctl.playlist("noon-1", [item])  # plays at T0 + 60
    await ctl.send_playlist(noon)
    cfg = node_config(tmp_path, mosquitto, ctl)
    player = NullPlayer(clock=clock)
    async with running(make_agent(cfg, clock, player)):
        await ctl.wait_ack("noon-1", "ready")
    # Offline: the daemon clears the retained playlist and retains the stop.
    await ctl.send_playlist(b"")
    stop = ctl.control("stop-1", "stop", expires_at=int(T0) + 1260)
    await ctl.link.publish(ctl.topics.control(HAMLET), stop, retain=True, expiry=600)
    async with running(make_agent(cfg, clock, player)):
        assert await ctl.wait_ack("noon-1", "failed") == "stopped by stop-1"
        clock.t = T0 + 120  # noon-1's play_at has passed: it would play now
        await asyncio.sleep(0.3)
    assert player.plays == []
    await ctl.link.publish(ctl.topics.control(HAMLET), b"", retain=True)
    async with running(make_agent(cfg, clock, player)):
        await ctl.send_playlist(noon)  # the same envelope again, without the stop retained
        later = ctl.playlist("noon-2", [item], play_at=int(T0) + 150)  # issued after the stop
        await ctl.send_playlist(later)
        clock.t = T0 + 150
        await ctl.wait_ack("noon-2", "played")
    assert [p for p, _, _ in player.plays] == ["noon-2"]
    assert "playing" not in ctl.statuses("noon-1")
    saved = NodeStore(tmp_path / "cache")
    saved.open()
    assert saved.state.stopped[HAMLET].id == "stop-1"


async def test_the_broadcastd_node_command_plays_with_a_real_player_and_stops_cleanly(
    tmp_path, mosquitto, controller
):
    ctl = controller
    now = int(time.time())
    item = await ctl.publish_clip(b"real audio bytes" * 100)
    await ctl.send_playlist(
        ctl.playlist("noon-1", [item], play_at=now - 1, expires_at=now + 600, issued_at=now - 5)
    )
    played = tmp_path / "played.bin"
    cfg = tmp_path / "node.yaml"
    doc = {
        "node": {"id": "bc-01", "hamlet": HAMLET, "commune": ctl.commune},
        "broker": {"url": mosquitto.url},
        "public_key": protocol.public_key_b64(ctl.key),
        "cache_dir": "cache",
        "player": f"sh -c 'cp \"$0\" {played}' {{file}}",
        "heartbeat": "1s",
    }
    cfg.write_text(yaml.safe_dump(doc))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from broadcastd.node.cli import main; main()",
        "-c",
        str(cfg),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await ctl.wait_ack("noon-1", "played", within=20)
        assert played.read_bytes() == b"real audio bytes" * 100
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    states = [json.loads(p) for t, p in ctl.seen if t == ctl.topics.node_state("bc-01")]
    assert [s["state"] for s in states] == ["online", "offline"]


async def test_an_exercise_never_interrupts_even_if_marked_emergency(
    tmp_path, mosquitto, controller
):
    ctl, clock = controller, FakeClock(T0 + 60)
    clip = await ctl.publish_clip(b"r" * 3000)
    long_item = protocol.PlaylistItem(clip.sha256, clip.bytes, clip.chunks, 600_000, "t", "vi", "a")
    drill = protocol.PlaylistItem(clip.sha256, clip.bytes, clip.chunks, 10, "drill", "vi", "d")
    player = NullPlayer(speed=1.0, clock=clock)
    async with running(make_agent(node_config(tmp_path, mosquitto, ctl), clock, player)):
        await ctl.send_playlist(ctl.playlist("routine", [long_item]))
        await ctl.wait_ack("routine", "playing")
        await ctl.send_playlist(
            ctl.playlist("drill", [drill], slot="now", priority="emergency", status="exercise")
        )
        await ctl.wait_ack("drill", "ready")
        # Only once the routine bulletin is gone may the drill play. (A stop would silence the
        # drill too: it was issued before the stop.)
        await ctl.send_control(ctl.control("cancel-1", "cancel", target="routine"))
        await ctl.wait_ack("drill", "played")
    assert ctl.statuses("routine") == ["received", "ready", "playing", "failed"]
    assert ctl.acks("routine")[-1][2] == "cancelled by cancel-1"


async def test_simulated_message_loss_still_plays_exactly_once(tmp_path, mosquitto, controller):
    ctl, clock = controller, FakeClock(T0)
    items = [await ctl.publish_clip(os.urandom(300_000))]  # 5 chunks
    await ctl.send_playlist(ctl.playlist("noon-1", items))
    player = NullPlayer(clock=clock)
    agent = NodeAgent(
        node_config(tmp_path, mosquitto, ctl),
        clock=clock,
        player=player,
        loss=0.5,
        tick=0.02,
        refetch_after=0.2,
        rng=random.Random(7),
    )
    async with running(agent):
        await ctl.wait_ack("noon-1", "ready", within=20)
        clock.t = T0 + 60
        await ctl.wait_ack("noon-1", "played")
    assert agent.dropped > 0
    assert [p for p, _, _ in player.plays] == ["noon-1"]


async def test_an_expired_download_stops_and_clips_unused_for_a_week_are_deleted(
    tmp_path, mosquitto, controller
):
    ctl, clock = controller, FakeClock(T0 + 30)
    cfg = node_config(tmp_path, mosquitto, ctl)
    earlier = NodeStore(cfg.cache_dir)  # what an earlier run left: a clip last used 8 days ago
    earlier.open()
    stale = b"stale" * 100
    stale_sha = hashlib.sha256(stale).hexdigest()
    earlier.write_chunk(stale_sha, 0, stale, 1)
    assert earlier.assemble(stale_sha, len(stale), 1)
    then = time.time() - 8 * 86400
    os.utime(earlier.clip_path(stale_sha), (then, then))
    data = os.urandom(200_000)  # 4 chunks; only 2 are published before the playlist expires
    half = await ctl.publish_clip(data, range(2))
    agent = make_agent(cfg, clock)
    async with running(agent):
        await eventually(lambda: not earlier.clip_path(stale_sha).exists())
        await ctl.send_playlist(ctl.playlist("noon-1", [half]))
        await ctl.wait_ack("noon-1", "received")
        assert half.sha256 in agent.fetcher.active
        clock.t = T0 + 1260
        await ctl.wait_ack("noon-1", "expired")
        await eventually(lambda: half.sha256 not in agent.fetcher.active)
        await ctl.publish_clip(data, range(2, 4))  # too late: nobody is subscribed any more
        await asyncio.sleep(0.5)
    assert sorted(i for _, i in agent.store.chunks_written) == [0, 1]
    assert (cfg.cache_dir / "partial" / half.sha256).exists()  # resumable for a week
