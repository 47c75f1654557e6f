"""Acceptance 2: forged playlists injected with the real `mosquitto_pub` are rejected, never played.

A running daemon (a mosquitto with the generated password file and ACL) and reference agents have
accepted the real noon playlist. An attacker whom the broker lets write every playlist topic (the
worst case: broker authorization bypassed; with the controller's own login it would also close
the daemon's connection, see tests/resilience/test_stolen_node.py) publishes five forgeries with
the `mosquitto_pub` CLI.
Each agent must ack `rejected` with the reason, the daemon must count and journal it, and none of
the forged ids may reach the player.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.e2e import E2E, wait_for, write_commune

from broadcastd import protocol
from broadcastd.transport.credentials import hash_password, write_broker_files

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.transport.broker import MosquittoProcess

NODES_PER_HAMLET = 2
FORGER_PASSWORD = "forger-pw"  # noqa: S105 - a test login


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


def _with_forger(e2e: E2E, make_broker: Callable[..., MosquittoProcess]) -> E2E:
    """The commune on a test-owned mosquitto whose ACL also lets `forger` write every playlist."""
    passwd, acl, creds = write_broker_files(e2e.config, e2e.root / "broker-files")
    root = protocol.Topics(e2e.config.commune.id).root
    with acl.open("a", encoding="utf-8") as fh:
        fh.write(f"user forger\ntopic write {root}/hamlet/+/playlist\n")
    with passwd.open("a", encoding="utf-8") as fh:
        fh.write(f"forger:{hash_password(FORGER_PASSWORD)}\n")
    broker = make_broker(password_file=passwd, acl_file=acl, persistence=False)
    (e2e.root / "controller.pw").write_text(creds.controller[1] + "\n", encoding="utf-8")
    text = e2e.config_path.read_text(encoding="utf-8")
    text = re.sub(
        r"^broker: .*$",
        f"broker: {{mode: external, url: '{broker.url}', listen: '{broker.host}:{broker.port}', "
        f"username: {creds.controller[0]}, password_file: controller.pw}}",
        text,
        count=1,
        flags=re.MULTILINE,
    )
    e2e.config_path.write_text(text, encoding="utf-8")
    return E2E(e2e.root, e2e.config_path, e2e.offset, e2e.play_at)


async def test_forged_playlists_from_mosquitto_pub_are_rejected_and_never_played(  # noqa: C901 - one end-to-end story, told in order
    tmp_path, make_broker
):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=NODES_PER_HAMLET, play_in=3.0)
    e2e = _with_forger(e2e, make_broker)
    async with e2e.running() as run:
        daemon, fleet = run.daemon, run.fleet
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
        topic = protocol.Topics(e2e.config.commune.id).playlist("h00")
        for body, _ in forgeries.values():
            await _mosquitto_pub(e2e.config.broker.listen, ("forger", FORGER_PASSWORD), topic, body)

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
