"""A simulated fleet: N reference agents in one process with the null player.

It runs the real `NodeAgent` (not a second implementation) against a real broker, with optional
inbound message loss and random disconnects ("flapping": the agent is cut off without a clean
close, so its Last Will fires, then comes back with the same cache directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, Unpack

from broadcastd import protocol
from broadcastd.node.agent import NodeAgent
from broadcastd.node.fetch import REFETCH_AFTER_S
from broadcastd.node.player import NullPlayer
from broadcastd.node.settings import NodeBroker, NodeConfig, NodeIdentity
from broadcastd.transport import pki
from broadcastd.transport.credentials import Credentials
from broadcastd.transport.signingkeys import SigningKeys

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from pathlib import Path

    from broadcastd.config import Config

log = logging.getLogger(__name__)

FLAP_CHECK_S = 1.0
FLAP_DOWN_S = (0.5, 3.0)


@dataclass(frozen=True, slots=True)
class SimNode:
    id: str
    hamlet: str
    username: str
    password: str


@dataclass(slots=True)
class SimAgent:
    spec: SimNode
    config: NodeConfig
    player: NullPlayer
    agent: NodeAgent | None = None
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    plays: list[tuple[str, str, float]] = field(default_factory=list)


def fleet_nodes(
    config: Config,
    passwords: dict[str, str],
    *,
    count: int = 0,
    fallback: tuple[str, str] | None = None,
) -> list[SimNode]:
    """The config's nodes, or `count` synthetic ones spread round-robin over the hamlets.

    Synthetic nodes are not in the broker's ACL, so they connect with `fallback` credentials.
    """
    if count <= 0:  # a revoked node has no password, hence no place in the fleet
        return [
            SimNode(n.id, h.id, n.id, passwords[n.id])
            for h in config.hamlets
            for n in h.nodes
            if n.id in passwords
        ]
    if fallback is None:
        raise ValueError("synthetic nodes need fallback credentials")
    hamlets = [h.id for h in config.hamlets]
    return [
        SimNode(f"sim-{i:05d}", hamlets[i % len(hamlets)], fallback[0], fallback[1])
        for i in range(count)
    ]


class FleetOptions(TypedDict, total=False):
    """The simulation knobs of `Fleet`, for callers that pass them through."""

    loss: float
    flap: float
    clock: Callable[[], float]
    heartbeat_s: float | None
    seed: int | None
    player_speed: float
    refetch_after: float


class Fleet:
    """Owns the simulated agents; `await run()` until cancelled or `stop()`.

    `player_speed` scales how long a simulated play lasts (0: instant, 1: the clip's duration).
    """

    def __init__(  # noqa: PLR0913 - every knob of a simulation is explicit
        self,
        config: Config,
        nodes: list[SimNode],
        *,
        broker_url: str,
        public_key: str,
        cache_root: Path,
        ca_file: Path | None = None,
        loss: float = 0.0,
        flap: float = 0.0,
        clock: Callable[[], float] = time.time,
        heartbeat_s: float | None = None,
        seed: int | None = None,
        player_speed: float = 0.0,
        refetch_after: float = REFETCH_AFTER_S,
    ) -> None:
        self.commune = config.commune.id
        self.loss = loss
        self.refetch_after = refetch_after  # real seconds before a stalled download is re-asked
        self.flap = flap
        self.clock = clock
        self._rng = random.Random(seed)  # noqa: S311 - simulated faults, not cryptography
        hb = heartbeat_s if heartbeat_s is not None else config.nodes.heartbeat.total_seconds()
        self.agents: dict[str, SimAgent] = {}
        for node in nodes:
            node_config = NodeConfig(
                node=NodeIdentity(id=node.id, hamlet=node.hamlet, commune=self.commune),
                broker=NodeBroker(
                    url=broker_url, username=node.username, password=node.password, ca_file=ca_file
                ),
                public_key=public_key,
                cache_dir=cache_root / node.id,
                player=None,
                heartbeat=dt.timedelta(seconds=hb),
                keepalive=config.nodes.keepalive,
                timezone=config.commune.timezone,
            )
            self.agents[node.id] = SimAgent(
                node, node_config, NullPlayer(clock=clock, speed=player_speed)
            )
        self._stopping = asyncio.Event()

    @classmethod
    def for_config(
        cls,
        config: Config,
        *,
        cache_root: Path,
        nodes: Collection[str] | None = None,
        count: int = 0,
        broker_url: str | None = None,
        **options: Unpack[FleetOptions],
    ) -> Fleet:
        """The config's speakers (only `nodes`, if given) or `count` synthetic ones, with the
        passwords, public key and CA the daemon made, against `broker_url` (default: the config's
        URL for nodes)."""
        creds = Credentials.load_or_create(config)
        key = SigningKeys(config.signing.private_key_file).current  # as node-config
        specs = fleet_nodes(config, creds.passwords, count=count, fallback=creds.monitor)
        if nodes is not None:
            wanted = set(nodes)
            specs = [s for s in specs if s.id in wanted]
        return cls(
            config,
            specs,
            broker_url=broker_url or config.broker.url_for_nodes,
            public_key=protocol.public_key_b64(key.public_key()),
            cache_root=cache_root,
            # The commune CA when the speakers' own URL is TLS, as in their bundles.
            ca_file=pki.trust_anchor(config) if broker_url is None else None,
            **options,
        )

    def _start(self, sim: SimAgent, tg: asyncio.TaskGroup) -> None:
        sim.agent = NodeAgent(
            sim.config,
            clock=self.clock,
            player=sim.player,
            loss=self.loss,
            refetch_after=self.refetch_after,
        )
        sim.task = tg.create_task(self._guard(sim.agent), name=f"sim-{sim.spec.id}")

    async def _guard(self, agent: NodeAgent) -> None:
        """An agent that dies is logged, never takes the rest of the fleet down."""
        try:
            await agent.run()
        except Exception:
            log.exception("simulated node %s crashed", agent.id)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for sim in self.agents.values():
                self._start(sim, tg)
            flapper = tg.create_task(self._flapper(tg), name="sim-flapper") if self.flap else None
            await self._stopping.wait()
            if flapper is not None:
                flapper.cancel()
            for sim in self.agents.values():
                if sim.agent is not None:
                    sim.agent.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _flapper(self, tg: asyncio.TaskGroup) -> None:
        while True:
            await asyncio.sleep(FLAP_CHECK_S)
            for sim in self.agents.values():
                if self._rng.random() < self.flap and sim.task is not None and not sim.task.done():
                    tg.create_task(self._cut(sim, tg), name=f"sim-flap-{sim.spec.id}")

    async def _cut(self, sim: SimAgent, tg: asyncio.TaskGroup) -> None:
        """Drop the connection without a clean close (Last Will fires), then reconnect."""
        if sim.task is None:
            return
        sim.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim.task
        await asyncio.sleep(self._rng.uniform(*FLAP_DOWN_S))
        if not self._stopping.is_set():
            sim.restarts += 1
            self._start(sim, tg)

    # -- what happened -----------------------------------------------------------------------------

    def plays_of(self, playlist_id: str) -> dict[str, int]:
        """node -> how many times it started the first clip of `playlist_id` (should be 0 or 1)."""
        out: dict[str, int] = {}
        for node_id, sim in self.agents.items():
            starts = [p for p in sim.player.plays if p[0] == playlist_id]
            first = starts[0][1] if starts else None
            out[node_id] = sum(1 for p in starts if p[1] == first)
        return out
