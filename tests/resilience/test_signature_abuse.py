"""Forged, replayed, unsigned, wrong-key, wrong-commune envelopes at a real agent: none accepted.

The attacker publishes on the agent's own playlist/control topics of a real mosquitto (as if
the broker were compromised or the ACL bypassed). Every hostile message must end as one
`rejected` count and one `rejected` ack; nothing may become pending or play.
"""

from __future__ import annotations

import base64
import json
import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.agents import node_config, running_agent, unique_commune
from support.e2e import wait_for
from support.envelopes import signed, signed_playlist
from support.mqtt import link_as
from support.soak import count

from broadcastd import protocol

HAMLET = "h1"


def _flip(payload: bytes, rng: random.Random) -> bytes:
    data = bytearray(payload)
    bit = rng.randrange(len(data) * 8)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def _resign(payload: bytes, key: Ed25519PrivateKey, **changes: object) -> bytes:
    env = json.loads(payload)
    env.pop("sig")
    env.update(changes)
    return signed(key, env)


async def test_forged_replayed_and_foreign_envelopes_are_all_rejected_and_counted(
    tmp_path, mosquitto, new_inbox, run_link, fake_clock
):
    rng = random.Random(8)
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    commune = unique_commune()
    topics = protocol.Topics(commune)
    now = int(fake_clock())
    config = node_config(
        tmp_path,
        broker_url=mosquitto.url,
        commune=commune,
        hamlet=HAMLET,
        node="n1",
        public_key=protocol.public_key_b64(key.public_key()),
    )

    def pl(pid: str, issued_at: int, seq: int) -> bytes:
        return signed_playlist(
            key,
            commune=commune,
            hamlet=HAMLET,
            playlist_id=pid,
            play_at=now + 3600,
            expires_at=now + 7200,
            issued_at=issued_at,
            seq=seq,
        )

    # Yesterday's and this morning's real playlists, recorded by an attacker, then the current one.
    old = [pl(f"old-{i}", now - 1000 + i, 100 + i) for i in range(count(100, 100))]
    current = pl("current", now, 1000)
    fresh = pl("fresh", now + 1, 1001)  # valid and newer: the bit-flip target
    flips = [_flip(fresh, rng) for _ in range(count(1000, 1000))]
    hostile: list[bytes] = [
        *flips,
        *old,
        _resign(fresh, key).replace(b'"sig":', b'"nosig":'),  # unsigned (no sig field)
        _resign(fresh, key).replace(b'"sig":"', b'"sig":"" , "x":"'),  # malformed
        protocol.encode({k: v for k, v in json.loads(fresh).items() if k != "sig"}),  # unsigned
        protocol.encode({**json.loads(fresh), "sig": ""}),  # empty sig
        _resign(fresh, other),  # wrong key
        _resign(fresh, key, commune="another-commune"),  # wrong commune, correctly signed
        _resign(fresh, key, hamlet="h2"),  # another hamlet's playlist, correctly signed
        _resign(fresh, other, commune="another-commune"),
    ]
    # A non-canonical base64 signature (spare padding bits set) is the same signature bytes:
    # accepting it would let anyone mint a "new" message from an old one, so it is refused.
    sig = json.loads(fresh)["sig"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    tweaked = sig[:-3] + alphabet[alphabet.index(sig[-3]) ^ 1] + sig[-2:]  # 4 spare bits
    assert base64.b64decode(tweaked) == base64.b64decode(sig)
    hostile.append(protocol.encode({**json.loads(fresh), "sig": tweaked}))
    controls = [
        signed(
            other,  # a kill switch from the wrong key
            protocol.control_envelope(
                commune=commune,
                hamlet=HAMLET,
                control_id=f"stop-{i}",
                action="stop",
                issued_at=now,
                expires_at=now + 600,
            ),
        )
        for i in range(10)
    ]

    acks = new_inbox()
    attacker = link_as(
        mosquitto, None, None, acks, topics.node_ack("n1"), client_id=f"attacker-{commune}"
    )
    async with running_agent(config, fake_clock) as (agent, player), run_link(attacker):
        await attacker.publish(topics.playlist(HAMLET), current)
        await wait_for(
            lambda: "current" in agent.playlists.pending, 10, "the current playlist accepted"
        )
        for payload in hostile:
            await attacker.publish(topics.playlist(HAMLET), payload)
        for payload in controls:
            await attacker.publish(topics.control(HAMLET), payload)
        total = len(hostile) + len(controls)
        await wait_for(
            lambda: sum(agent.rejected.values()) >= total,
            60,
            f"{total} rejections, pending {list(agent.playlists.pending)}",
        )

        def rejected_acks() -> int:
            topic = topics.node_ack("n1")
            return sum(json.loads(p)["status"] == "rejected" for p in acks.on(topic))

        await wait_for(lambda: rejected_acks() >= total, 30, f"{total} rejected acks")

        assert sum(agent.rejected.values()) == total, agent.rejected
        assert rejected_acks() == total
        assert list(agent.playlists.pending) == ["current"], "nothing hostile may become pending"
        assert player.plays == []
        assert agent.store.state.seq.get("control") is None, "no forged control accepted"
        assert agent.rejected["replay"] == len(old)
        assert agent.rejected["wrong_commune"] >= 1
        assert agent.rejected["wrong_hamlet"] == 1
        assert agent.rejected["unsigned"] >= 2
        assert agent.rejected["bad_signature"] >= len(controls) + 1
        print(f"rejected by reason: {dict(agent.rejected)} of {total}")
