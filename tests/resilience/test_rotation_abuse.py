"""Key rotation under abuse and churn: a stolen speaker login cannot replace the retained rotation,
and speakers that keep dropping off (cut without a clean close, back with the same cache) still
all end on the new key. Reduced counts in `make test`, full ones in `make soak`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from support.e2e import wait_for, write_commune
from support.mqtt import Inbox, link_as, running_link
from support.soak import count

from broadcastd import cli, protocol
from broadcastd.errors import LinkError
from broadcastd.transport.credentials import Credentials

if TYPE_CHECKING:
    from support.e2e import E2E


async def cli_run(e2e: E2E, *argv: str) -> int:
    return await asyncio.to_thread(cli.run, [*argv, "-c", str(e2e.config_path)])


async def test_a_speaker_login_cannot_replace_the_retained_rotation(tmp_path):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=600)
    async with e2e.running(fleet=False) as run:
        daemon = run.daemon
        assert await cli_run(e2e, "keygen", "--rotate", "--activate-in", "1h") == 0
        genuine = daemon.rotations.keys.wire
        assert genuine is not None
        assert daemon.broker is not None
        topic = protocol.Topics(e2e.config.commune.id).keys()
        passwords = Credentials.load_or_create(e2e.config).passwords
        thief_key = protocol.Ed25519PrivateKey.generate()
        forged = protocol.KeyRotation(
            commune=e2e.config.commune.id,
            id="keys-9999999999",
            key=protocol.public_key_b64(protocol.Ed25519PrivateKey.generate()),
            retires=protocol.public_key_b64(thief_key),
            activate_at=0,
            retire_at=0,
            issued_at=0,
        ).seal(thief_key)
        thief = link_as(daemon.broker, "h00-n0", passwords["h00-n0"], Inbox())
        async with running_link(thief):
            with contextlib.suppress(LinkError):  # refused by the ACL: dropped or not acked
                await thief.publish(topic, forged, retain=True, timeout=3)
        inbox = Inbox()
        watcher = link_as(daemon.broker, "h01-n1", passwords["h01-n1"], inbox, topic)
        async with running_link(watcher):
            assert await inbox.wait_for(topic) == [genuine]


async def test_flapping_speakers_all_end_on_the_new_key(tmp_path):
    hamlets = 5
    per_hamlet = count(4, 20)
    e2e = write_commune(tmp_path, hamlets=hamlets, nodes_per_hamlet=per_hamlet, play_in=600)
    async with e2e.running(fleet={"flap": 0.05, "seed": 20}) as run:
        daemon = run.daemon
        await wait_for(lambda: daemon.registry.state(e2e.node_ids[0]) == "online", 20, "a node")
        rotate = ["keygen", "--rotate", "--activate-in", "2s", "--grace", "15s"]
        assert await cli_run(e2e, *rotate) == 0
        keys = daemon.rotations.keys
        rotation = keys.rotation
        assert rotation is not None

        def confirmed() -> set[str]:
            acks = daemon.journal.acks_for(rotation.id)
            return {a.node for a in acks if a.status == "received"}

        await wait_for(lambda: confirmed() == set(e2e.node_ids), 60, "every speaker to confirm")
        await wait_for(lambda: keys.in_progress() is None, 60, "the retirement")
        now = e2e.clock()
        fleet = run.fleet
        assert sum(sim.restarts for sim in fleet.agents.values()) > 0  # they did flap
        for node, sim in fleet.agents.items():
            assert sim.agent is not None
            trusted = [protocol.public_key_b64(k) for k in sim.agent.trust.trusted(now)]
            assert trusted == [rotation.key], node
