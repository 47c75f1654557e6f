"""Acceptance 2: forged playlists injected with the real `mosquitto_pub` are rejected, never played.

A running daemon (embedded mosquitto with its ACL) and reference agents have accepted the real
noon playlist. An attacker holding the controller's MQTT credentials (the worst case: the ACL
lets that user write every playlist topic) publishes five forgeries with the `mosquitto_pub` CLI.
Each agent must ack `rejected` with the reason, the daemon must count and journal it, and none of
the forged ids may reach the player.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.e2e import wait_for, write_commune

from broadcastd import protocol
from broadcastd.transport.credentials import Credentials

NODES_PER_HAMLET = 2


async def _mosquitto_pub(listen: str, creds: tuple[str, str], topic: str, body: bytes) -> None:
    """Publish `body` (QoS 1, MQTT v5) with the real CLI, as an attacker would."""
    host, _, port = listen.rpartition(":")
    user, password = creds
    exe = shutil.which("mosquitto_pub")
    if exe is None:
        pytest.fail("mosquitto_pub is not installed (apt-get install mosquitto-clients)")
    proc = await asyncio.create_subprocess_exec(
        exe,
        *("-h", host, "-p", port, "-V", "mqttv5", "-q", "1"),
        *("-u", user, "-P", password, "-t", topic, "-s"),
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(body), 10)
    assert proc.returncode == 0, err.decode()


async def test_forged_playlists_from_mosquitto_pub_are_rejected_and_never_played(tmp_path):  # noqa: C901 - one end-to-end story, told in order
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=NODES_PER_HAMLET, play_in=3.0)
    daemon = e2e.daemon()
    async with asyncio.TaskGroup() as tg:
        daemon_task = tg.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 20)
        fleet = e2e.fleet()
        fleet_task = tg.create_task(fleet.run())
        day = e2e.play_at.date()

        def played(pid: str) -> set[str]:
            return {a.node for a in daemon.journal.acks_for(pid) if a.status == "played"}

        def all_played() -> bool:
            rows = daemon.journal.dispatches_for(day, "noon")
            return len(rows) == 2 and all(len(played(r.id)) == NODES_PER_HAMLET for r in rows)

        await wait_for(all_played, 30, "the genuine noon playlist played everywhere")
        genuine = {
            r.hamlet: json.loads(r.envelope) for r in daemon.journal.dispatches_for(day, "noon")
        }
        real = genuine["h00"]
        key = protocol.load_private_key(e2e.config.signing.private_key_file)
        now = int(e2e.clock())

        def forged(pid: str, signer: Ed25519PrivateKey | None = key, **over: object) -> bytes:
            body = {k: v for k, v in real.items() if k != "sig"}
            body.update(id=pid, play_at=now, expires_at=now + 600, issued_at=real["issued_at"] + 1)
            body.pop("seq", None)  # the controller's seq would be replayed; issued_at is newer
            body.update(over)
            return protocol.encode(body if signer is None else protocol.sign(body, signer))

        expired_at = now - 5
        forgeries = {
            "forged-unsigned": (forged("forged-unsigned", None), "unsigned"),
            "forged-other-key": (
                forged("forged-other-key", Ed25519PrivateKey.generate()),
                "bad_signature",
            ),
            "forged-other-hamlet": (forged("forged-other-hamlet", hamlet="h01"), "wrong_hamlet"),
            "forged-expired": (
                forged("forged-expired", play_at=expired_at - 60, expires_at=expired_at),
                "expired",
            ),
            "forged-replay": (
                forged("forged-replay", issued_at=real["issued_at"] - 60),
                "replay",
            ),
        }
        creds = Credentials.load_or_create(e2e.config).controller
        topic = protocol.Topics(e2e.config.commune.id).playlist("h00")
        for body, _ in forgeries.values():
            await _mosquitto_pub(e2e.config.broker.listen, creds, topic, body)

        victims = [n for n in e2e.node_ids if n.startswith("h00-")]

        def answered() -> bool:
            return all(
                {a.node for a in daemon.journal.acks_for(pid)} >= set(victims) for pid in forgeries
            )

        await wait_for(answered, 15, "every h00 agent answered every forgery")
        await asyncio.sleep(1.5)  # anything that would wrongly play has play_at = now
        await daemon.journal.flush()

        for pid, (_, why) in forgeries.items():
            acks = daemon.journal.acks_for(pid)
            for node in victims:
                mine = [a for a in acks if a.node == node]
                # an expired envelope is answered with its own status; the rest are `rejected`
                status = "expired" if why == "expired" else "rejected"
                assert [a.status for a in mine] == [status], (pid, node, mine)
                if why != "expired":
                    assert mine[0].detail == why, (pid, node, mine[0].detail)
            assert fleet.plays_of(pid) == dict.fromkeys(fleet.agents, 0), pid
        for sim in fleet.agents.values():
            assert not any(p[0].startswith("forged-") for p in sim.player.plays)
            # the genuine bulletin still played exactly once
            assert fleet.plays_of(genuine[sim.spec.hamlet]["id"])[sim.spec.id] == 1
        rejected = daemon.metrics.registry.get_sample_value(
            "broadcastd_playlist_acks_total", {"hamlet": "h00", "status": "rejected"}
        )
        assert rejected == 4 * len(victims)
        for node in victims:
            agent = fleet.agents[node].agent
            assert agent is not None
            assert agent.rejected == {
                "unsigned": 1,
                "bad_signature": 1,
                "wrong_hamlet": 1,
                "replay": 1,
            }

        fleet.stop()
        await fleet_task
        daemon.request_stop()
        await daemon_task
