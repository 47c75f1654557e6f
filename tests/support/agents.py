"""A real reference agent (null player) against a test's broker, without the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from typing import TYPE_CHECKING

from broadcastd.node.agent import NodeAgent
from broadcastd.node.player import NullPlayer
from broadcastd.node.settings import NodeBroker, NodeConfig, NodeIdentity

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path


def unique_commune() -> str:
    """A commune id no other test uses: tests sharing the session broker never see each other."""
    return f"c-{uuid.uuid4().hex[:10]}"


def node_config(  # noqa: PLR0913 - one knob per NodeConfig field a test varies
    cache: Path,
    *,
    broker_url: str,
    commune: str,
    hamlet: str,
    node: str,
    public_key: str,
    username: str | None = None,
    password: str | None = None,
) -> NodeConfig:
    return NodeConfig(
        node=NodeIdentity(id=node, hamlet=hamlet, commune=commune),
        broker=NodeBroker(url=broker_url, username=username, password=password),
        public_key=public_key,
        cache_dir=cache / node,
        player=None,
        heartbeat=dt.timedelta(seconds=30),
        keepalive=dt.timedelta(seconds=10),
    )


@contextlib.asynccontextmanager
async def running_agent(
    config: NodeConfig, clock: Callable[[], float]
) -> AsyncIterator[tuple[NodeAgent, NullPlayer]]:
    """A NodeAgent connected for the block, stopped cleanly afterwards; and its null player."""
    player = NullPlayer(clock=clock)
    agent = NodeAgent(config, clock=clock, player=player)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.link.connected.wait(), 10)
        yield agent, player
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)
