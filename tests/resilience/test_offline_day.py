"""A speaker offline for a simulated day: on reconnect it plays today's playlist, never a stale one.

The agent's persistent MQTT session makes the broker queue every playlist published while it is
away (MQTT message expiry runs on real time, so yesterday's are still queued in a test). The
agent's clock is shifted a day forward: yesterday's playlists must be acked `expired` and never
played; the latest retained one plays exactly once.
"""

from __future__ import annotations

import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.agents import node_config, running_agent, unique_commune
from support.e2e import wait_for
from support.envelopes import signed_playlist
from support.mqtt import link_as

from broadcastd import protocol

DAY = 86400
CLIP = b"ID3" + bytes(range(256)) * 8


def _signed(key, commune: str, pid: str, slot: str, play_at: int, issued_at: int) -> bytes:  # noqa: PLR0913, PLR0917 - one per envelope field the scenario varies
    item = protocol.PlaylistItem(
        sha256=hashlib.sha256(CLIP).hexdigest(),
        bytes=len(CLIP),
        chunks=1,
        duration_ms=100,
        title="Tin",
        lang="vi",
        announcement="ann",
    )
    return signed_playlist(
        key,
        commune=commune,
        hamlet="h1",
        playlist_id=pid,
        slot=slot,
        play_at=play_at,
        expires_at=play_at + 1200,
        issued_at=issued_at,
        items=[item],
        seq=issued_at,
    )


async def test_node_back_after_a_day_plays_the_latest_and_no_stale_playlist(
    tmp_path, mosquitto, new_inbox, run_link, fake_clock
):
    key = Ed25519PrivateKey.generate()
    commune = unique_commune()
    topics = protocol.Topics(commune)
    config = node_config(
        tmp_path,
        broker_url=mosquitto.url,
        commune=commune,
        hamlet="h1",
        node="n1",
        public_key=protocol.public_key_b64(key.public_key()),
    )
    t0 = int(fake_clock())
    acks = new_inbox()
    daemon = link_as(mosquitto, None, None, acks, topics.node_ack("n1"), client_id=f"ctl-{commune}")
    async with run_link(daemon):
        await daemon.publish(topics.audio(hashlib.sha256(CLIP).hexdigest(), 0), CLIP, retain=True)
        async with running_agent(config, fake_clock):
            pass  # first boot: the broker now keeps a session (and its queue) for n1
        # while n1 is off: yesterday's noon and afternoon playlists, then today's noon
        stale = [
            ("y-noon", "noon", t0 + 60, t0),
            ("y-afternoon", "afternoon", t0 + 6 * 3600, t0 + 5 * 3600),
        ]
        for pid, slot, play_at, issued in stale:
            payload = _signed(key, commune, pid, slot, play_at, issued)
            await daemon.publish(topics.playlist("h1"), payload, retain=True, expiry=3600)
        today = t0 + DAY + 60
        latest = _signed(key, commune, "t-noon", "noon", today, t0 + DAY - 600)
        await daemon.publish(topics.playlist("h1"), latest, retain=True, expiry=3600)

        fake_clock.t = t0 + DAY  # a day later by the node's own clock
        async with running_agent(config, fake_clock) as (agent, player):
            await wait_for(lambda: "t-noon" in agent.playlists.pending, 10, "today's playlist")
            fake_clock.t = today + 1
            await wait_for(lambda: player.plays, 10, "a play")
            await wait_for(
                lambda: any(
                    json.loads(p)["status"] == "played" for p in acks.on(topics.node_ack("n1"))
                ),
                10,
                "the played ack",
            )
            plays = list(player.plays)
        statuses = [
            (json.loads(p)["playlist"], json.loads(p)["status"])
            for p in acks.on(topics.node_ack("n1"))
        ]
    assert {p[0] for p in plays} == {"t-noon"}, plays
    assert len(plays) == 1
    assert ("t-noon", "played") in statuses
    for pid, *_ in stale:
        assert (pid, "played") not in statuses
        assert (pid, "playing") not in statuses
        assert (pid, "expired") in statuses, (pid, statuses)
