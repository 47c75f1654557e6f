"""Issue 20, acceptance 4: a signing-key rotation across 50 speakers, 5 of them away during it.

Daemon, embedded mosquitto, 50 reference agents and the real CLI (`keygen --rotate`, `nodes`,
`volume`), on the e2e harness's shifted clock with a short activation and grace. The slot's
playlists are signed with the old key before the activation and play after it, on all 50; the
5 speakers started only after the activation catch up from the retained rotation; after the
retirement a playlist forged with the old key is refused by every speaker and a control signed
with the new key is applied by every speaker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from typing import TYPE_CHECKING

from support.e2e import TEXTS, TZ, wait_for, write_commune
from support.envelopes import signed_playlist

from broadcastd import cli, protocol
from broadcastd.errors import ProtocolError
from broadcastd.protocol.keys import load_private_key
from broadcastd.transport.signingkeys import SigningKeys

if TYPE_CHECKING:
    import pytest
    from support.e2e import E2E, Running

    from broadcastd.node.agent import NodeAgent
    from broadcastd.sim.fleet import SimAgent

HAMLETS = 10
PER_HAMLET = 5
AWAY = [f"h{h:02d}-n4" for h in range(5)]  # offline during the rotation
ACTIVATE_IN_S = 3
GRACE_AFTER_PLAY_S = 10  # the old key retires this long after the slot's play_at


async def cli_run(e2e: E2E, *argv: str) -> int:
    return await asyncio.to_thread(cli.run, [*argv, "-c", str(e2e.config_path)])


def speakers(run: Running) -> dict[str, SimAgent]:
    return {node: sim for fleet in run.fleets for node, sim in fleet.agents.items()}


def agent(sim: SimAgent) -> NodeAgent:
    assert sim.agent is not None
    return sim.agent


async def test_fifty_speakers_end_on_the_new_key_and_no_slot_is_missed(tmp_path, capsys):
    e2e = write_commune(tmp_path, hamlets=HAMLETS, nodes_per_hamlet=PER_HAMLET, play_in=30)
    nodes = e2e.node_ids
    assert len(nodes) == 50
    online = [n for n in nodes if n not in AWAY]
    old_key = load_private_key(e2e.config.signing.private_key_file)
    day = e2e.play_at.date()
    async with e2e.running(fleet={"nodes": online}) as run:
        journal = run.daemon.journal

        def ready() -> bool:
            rows = journal.dispatches_for(day, "noon")
            acked = {a.node for r in rows for a in journal.acks_for(r.id)}
            return len(rows) == HAMLETS and acked == set(online)

        await wait_for(ready, 60, "the noon playlists received by the 45 online speakers")
        rotation = await _rotate(e2e, run, capsys)

        def confirmed() -> set[str]:
            return {a.node for a in journal.acks_for(rotation.id) if a.status == "received"}

        await wait_for(lambda: confirmed() == set(online), 30, "45 speakers to confirm the key")
        await wait_for(lambda: e2e.clock() >= rotation.activate_at, 60, "the activation")
        keys = run.daemon.rotations.keys
        assert protocol.public_key_b64(keys.active(e2e.clock())) == rotation.key
        late = run.start(e2e.fleet(nodes=AWAY))  # back after the activation: they catch up
        await wait_for(lambda: confirmed() == set(nodes), 30, "the 5 late speakers to confirm")
        await wait_for(
            run.slot_played(day, hamlets=HAMLETS, acks=len(nodes)), 60, "all 50 to play noon"
        )
        capsys.readouterr()
        assert await cli_run(e2e, "nodes", "--json") == 0
        shown = {r["node"]: r["key_rotation"] for r in json.loads(capsys.readouterr().out)}
        fp = protocol.fingerprint(rotation.key)
        expected = {"id": rotation.id, "new_key": fp, "status": "confirmed"}
        assert sorted(shown) == sorted(nodes)
        assert all(row == expected for row in shown.values())
        await wait_for(lambda: keys.in_progress() is None, 60, "the retirement")
        assert not keys.next_path.exists()  # the old private key is gone
        await _after_retirement(e2e, run, old_key, rotation.key, capsys)
        assert not late.done()
    events = [json.loads(d) for d in _events(e2e, "key_rotation")]
    assert [(e["id"], e["operator"], e["new_key"]) for e in events] == [(rotation.id, "an", fp)]


async def _rotate(
    e2e: E2E, run: Running, capsys: pytest.CaptureFixture[str]
) -> protocol.KeyRotation:
    """`keygen --rotate`, activating in 3 s (before the slot's play_at) and retiring the old key
    a few seconds after the slot has played."""
    left = int(e2e.play_at.timestamp() - e2e.clock())
    assert left >= ACTIVATE_IN_S + 3, f"the commune took too long to start ({left}s left)"
    grace = left - ACTIVATE_IN_S + GRACE_AFTER_PLAY_S
    capsys.readouterr()
    rotate = ["keygen", "--rotate", "--activate-in", f"{ACTIVATE_IN_S}s", "--grace", f"{grace}s"]
    assert await cli_run(e2e, *rotate, "--operator", "an") == 0
    out = capsys.readouterr()
    rotation = run.daemon.rotations.keys.rotation
    assert rotation is not None
    assert out.out.strip() == rotation.key
    assert "journaled: operator 'an' as given" in out.err
    # The slot planned across the activation: signed with the old key, plays after it.
    for row in run.daemon.journal.dispatches_for(e2e.play_at.date(), "noon"):
        assert json.loads(row.envelope)["issued_at"] <= rotation.activate_at <= row.play_at
    return rotation


async def _after_retirement(
    e2e: E2E,
    run: Running,
    old_key: protocol.Ed25519PrivateKey,
    new_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every speaker trusts only the new key, refuses a forgery by the old one and applies a
    control signed by the new one."""
    now = int(e2e.clock())
    sims = speakers(run)
    assert sorted(sims) == sorted(e2e.node_ids)
    for node, sim in sims.items():
        trusted = [protocol.public_key_b64(k) for k in agent(sim).trust.trusted(now)]
        assert trusted == [new_key], node
    commune = e2e.config.commune.id
    topics = protocol.Topics(commune)
    for h in (f"h{n:02d}" for n in range(HAMLETS)):
        forged = signed_playlist(
            old_key,
            commune=commune,
            hamlet=h,
            playlist_id=f"forged-{h}",
            play_at=now + 5,
            expires_at=now + 600,
            issued_at=now,
            slot="forged",
        )
        await run.daemon.link.publish(topics.playlist(h), forged)
    await wait_for(
        lambda: all(agent(s).gate.rejected["retired_key"] >= 1 for s in sims.values()),
        30,
        "every speaker to refuse the old key's forgery",
    )
    played = {p[0] for s in sims.values() for p in s.player.plays}
    assert not any(pid.startswith("forged") for pid in played)
    capsys.readouterr()
    assert await cli_run(e2e, "volume", "40", "--operator", "an") == 0
    answer = json.loads(capsys.readouterr().out)
    assert sorted(answer["acked"]) == sorted(e2e.node_ids)  # signed with the new key: applied


def _events(e2e: E2E, kind: str) -> list[str]:
    """The journal's `kind` events, read after the daemon closed it."""
    conn = sqlite3.connect(e2e.config.state_dir / "journal.sqlite3")
    try:
        return [d for (d,) in conn.execute("SELECT detail FROM events WHERE kind=?", (kind,))]
    finally:
        conn.close()


async def test_a_rotation_made_without_the_daemon_is_published_when_it_starts(tmp_path, capsys):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=2, play_in=600)
    assert await cli_run(e2e, "keygen", "--grace", "1d") == 2
    assert "go with --rotate" in capsys.readouterr().err
    assert await cli_run(e2e, "keygen", "--rotate", "--activate-in", "soon") == 2
    assert "--activate-in: expected a duration" in capsys.readouterr().err
    assert await cli_run(e2e, "keygen", "--rotate", "--operator", "an") == 0
    out = capsys.readouterr()
    assert "the daemon is not running" in out.err
    keys = SigningKeys(e2e.config.signing.private_key_file)
    rotation = keys.in_progress()
    assert rotation is not None
    assert out.out.strip() == rotation.key
    assert rotation.activate_at - rotation.issued_at == 3600  # the defaults
    assert rotation.retire_at - rotation.activate_at == 7 * 86400
    assert await cli_run(e2e, "keygen", "--rotate") == 1
    assert f"rotation {rotation.id} to key" in capsys.readouterr().err
    # A backup restored without the new key: `check` says so before `run` refuses it.
    hidden = keys.next_path.rename(keys.next_path.with_suffix(".away"))
    assert await cli_run(e2e, "check") == 0
    assert "key.next: the key rotation" in capsys.readouterr().err
    hidden.rename(keys.next_path)
    async with e2e.running() as run:
        journal = run.daemon.journal
        await wait_for(
            lambda: {a.node for a in journal.acks_for(rotation.id)} == set(e2e.node_ids),
            30,
            "both speakers to confirm the rotation published at start",
        )
        # Before the activation the daemon still signs with the old key.
        assert run.daemon.rotations.keys.active(e2e.clock()) is run.daemon.rotations.keys.current
    details = [json.loads(d) for d in _events(e2e, "key_rotation")]
    assert [(d["id"], d["operator"], d["cause"]) for d in details] == [
        (rotation.id, "an", "daemon not running")
    ]


async def test_a_daemon_restarted_mid_rotation_signs_with_the_key_the_clock_says(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=2, play_in=600)
    old = load_private_key(e2e.config.signing.private_key_file).public_key()
    async with e2e.running() as run:
        journal = run.daemon.journal
        await wait_for(
            lambda: all(run.daemon.registry.state(n) == "online" for n in e2e.node_ids),
            20,
            "both speakers online",
        )
        rotate = ["keygen", "--rotate", "--activate-in", "10s", "--grace", "10m"]
        assert await cli_run(e2e, *rotate) == 0
        rotation = run.daemon.rotations.keys.rotation
        assert rotation is not None
        await wait_for(
            lambda: {a.node for a in journal.acks_for(rotation.id)} == set(e2e.node_ids),
            20,
            "both speakers to confirm",
        )
    new = protocol.load_public_key(rotation.key)
    async with e2e.running() as run:  # restarted before the activation: the old key signs
        assert e2e.clock() < rotation.activate_at
        assert _verifies(e2e, await _announce(e2e, run, TEXTS[0]), old)
    await wait_for(lambda: e2e.clock() >= rotation.activate_at, 30, "the activation")
    async with e2e.running() as run:  # restarted after it: the new key signs, speakers play
        wire = await _announce(e2e, run, TEXTS[1])
        assert _verifies(e2e, wire, new)
        assert not _verifies(e2e, wire, old)


async def _announce(e2e: E2E, run: Running, text: str) -> bytes:
    """Announce `text` now; the playlist's signed bytes once every speaker played it."""
    journal = run.daemon.journal
    before = {r.id for r in journal.dispatches_for(_today(e2e))}
    assert await cli_run(e2e, "announce", "--now", "--text", text) == 0

    def played() -> str | None:
        rows = [r for r in journal.dispatches_for(_today(e2e)) if r.id not in before]
        done = {a.node for r in rows for a in journal.acks_for(r.id) if a.status == "played"}
        return rows[0].envelope if rows and done == set(e2e.node_ids) else None

    await wait_for(played, 30, "both speakers to play the announcement")
    wire = played()
    assert wire is not None
    return wire.encode()


def _verifies(e2e: E2E, wire: bytes, key: protocol.Ed25519PublicKey) -> bool:
    env = json.loads(wire)
    try:
        protocol.verify(wire, key, commune=env["commune"], hamlet=env["hamlet"], now=e2e.clock())
    except ProtocolError:
        return False
    return True


def _today(e2e: E2E) -> dt.date:
    return dt.datetime.fromtimestamp(e2e.clock(), tz=TZ).date()
