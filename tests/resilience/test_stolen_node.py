"""Issue 23: a speaker's credentials pulled out of the board must not take the commune down.

Each test does what an attacker holding ONE node's valid login (what `node-config --out` wrote)
would do against the real embedded mosquitto and a running daemon, and shows the commune
unaffected: the controller stays connected (no `offline` on `controller/state`), other nodes keep
their sessions, the figures do not move.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.e2e import E2E, write_commune

from broadcastd import protocol
from broadcastd.transport.credentials import BULK_USERS, CONTROLLER_USER, Credentials

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from broadcastd.controller.daemon import Daemon

THIEF = "h00-n0"  # the stolen board's login
VICTIM = "h01-n0"  # another hamlet's node, offline while the thief is about
WATCHER = "h01-n1"  # sees what every speaker sees of the controller


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **commune: object) -> AsyncIterator[tuple[E2E, Daemon]]:
    """Two hamlets of two nodes and their daemon (embedded broker, generated ACL), no schedule."""
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=600.0, **commune)  # type: ignore[arg-type]
    daemon = e2e.daemon(scheduling=False)
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 30)
        await daemon.link.wait_connected(10)
        yield e2e, daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 15)


def client(e2e: E2E, user: str, **kwargs: object) -> aiomqtt.Client:
    host, _, port = e2e.config.broker.listen.rpartition(":")
    password = Credentials.load_or_create(e2e.config).password(user)
    return aiomqtt.Client(
        host,
        int(port),
        username=user,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5,
        **kwargs,  # type: ignore[arg-type]
    )


def session(e2e: E2E, user: str, identifier: str, *, clean: bool) -> aiomqtt.Client:
    """A client keeping (clean=False) or discarding (clean=True) the session of `identifier`."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    return client(e2e, user, identifier=identifier, clean_start=clean, properties=props)


@contextlib.asynccontextmanager
async def watching(e2e: E2E, user: str, topic: str) -> AsyncIterator[list[bytes]]:
    """Every payload on `topic` while the block runs, as seen by `user`."""
    seen: list[bytes] = []
    async with client(e2e, user, identifier=f"{user}-watch") as watcher:
        await watcher.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in watcher.messages:
                seen.append(bytes(message.payload))  # type: ignore[arg-type]  # noqa: PERF401 - live, until cancelled

        task = asyncio.create_task(collect())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_stolen_login_cannot_take_over_the_controllers_or_another_nodes_client_id(
    tmp_path,
):
    async with running(tmp_path) as (e2e, daemon):
        topics = protocol.Topics(e2e.config.commune.id)
        # The victim's session (what its agent keeps), subscribed to its hamlet's controls.
        victim_id = f"broadcastd-node-{VICTIM}"
        async with session(e2e, VICTIM, victim_id, clean=False) as victim:
            await victim.subscribe(topics.control("h01"), qos=1)
        main, bulk = daemon.link.connects, [link.connects for link in daemon.bulk.links]
        taken = [
            f"broadcastd-{e2e.config.commune.id}",  # the controller's predictable id
            CONTROLLER_USER,
            BULK_USERS[0],
            victim_id,
            VICTIM,
        ]
        async with watching(e2e, WATCHER, topics.controller_state()) as states:
            for _ in range(3):
                for identifier in taken:
                    async with session(e2e, THIEF, identifier, clean=True) as thief:
                        await thief.subscribe(f"{topics.root}/#", qos=1)
                        await asyncio.sleep(0.05)
            # A stop for the victim's hamlet while it is away, then the thief tries again.
            await daemon.dispatcher.control(["h01"], "stop")
            for identifier in (victim_id, VICTIM):
                async with session(e2e, THIEF, identifier, clean=True):
                    pass
            await asyncio.sleep(0.5)  # a Last Will would reach the watcher well within this
        async with session(e2e, VICTIM, victim_id, clean=False) as victim:
            async with asyncio.timeout(5):
                message = await anext(aiter(victim.messages))
        assert b'"action":"stop"' in bytes(message.payload)  # type: ignore[arg-type]
        assert daemon.link.connected.is_set()
        assert daemon.link.connects == main, "the controller's connection was taken over"
        assert [link.connects for link in daemon.bulk.links] == bulk
        assert states, "the watcher saw the retained controller state"
        assert all(b'"online"' in s for s in states), states
