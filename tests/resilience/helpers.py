"""Helpers of the resilience suite: counts (reduced in `make test`, full with BROADCASTD_SOAK=1),
Hypothesis settings, a settable clock, a real agent for a block, signed test playlists."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import time
import uuid
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, settings
from support.e2e import E2E

from broadcastd import protocol
from broadcastd.node.agent import NodeAgent
from broadcastd.node.player import NullPlayer
from broadcastd.node.settings import NodeBroker, NodeConfig, NodeIdentity

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

SOAK = os.environ.get("BROADCASTD_SOAK") == "1"


def count(reduced: int, full: int) -> int:
    """`full` under `make soak`, `reduced` in `make test`."""
    return full if SOAK else reduced


def examples(reduced: int, full: int) -> settings:
    """Hypothesis settings for this suite: no per-example deadline (loaded CI machines)."""
    return settings(
        max_examples=count(reduced, full),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def unique_commune() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


class FakeClock:
    """A settable clock shared by a test and the agents it starts."""

    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


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
    config: NodeConfig, clock: Callable[[], float], **kwargs: object
) -> AsyncIterator[NodeAgent]:
    """A real NodeAgent (null player) connected for the block, stopped cleanly afterwards."""
    player = NullPlayer(clock=clock)
    agent = NodeAgent(config, clock=clock, player=player, **kwargs)  # type: ignore[arg-type]
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.link.connected.wait(), 10)
        yield agent
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)


def playlist(  # noqa: PLR0913 - one keyword per field a test varies
    key: protocol.Ed25519PrivateKey,
    *,
    commune: str,
    hamlet: str,
    pid: str,
    play_at: int,
    expires_at: int,
    issued_at: int,
    seq: int | None = None,
    slot: str = "noon",
    priority: str = "normal",
) -> bytes:
    """A signed playlist whose single clip nobody has (it stays pending, never plays)."""
    item = protocol.PlaylistItem(
        sha256=uuid.uuid4().hex * 2,
        bytes=1000,
        chunks=1,
        duration_ms=500,
        title="Tin thử",
        lang="vi",
        announcement="ann",
    )
    env = protocol.playlist_envelope(
        commune=commune,
        hamlet=hamlet,
        playlist_id=pid,
        slot=slot,
        play_at=play_at,
        expires_at=expires_at,
        priority=priority,
        issued_at=issued_at,
        items=[item],
        seq=seq,
    )
    return protocol.encode(protocol.sign(env, key))


def use_external_broker(e2e: E2E, host: str, port: int) -> E2E:
    """The same commune pointed at a broker the test owns (so the test can SIGKILL it)."""
    text = e2e.config_path.read_text(encoding="utf-8")
    lines = [
        f"broker: {{mode: external, url: 'mqtt://{host}:{port}', listen: '{host}:{port}'}}"
        if line.startswith("broker:")
        else line
        for line in text.splitlines()
    ]
    e2e.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return E2E(e2e.root, e2e.config_path, e2e.offset, e2e.play_at)
