"""A commune run through the link lab: its daemon (and so its mosquitto) inside the lab's core
namespace, its speakers as reference agents in this process, each connected through its own
lab link. What the daemon journals is read from its journal file; speakers are inspected
directly (their fetchers, their null players)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from support.daemon_main import reaped, spawn, wait_log

from broadcastd import protocol
from broadcastd.controller.controlsocket import request
from broadcastd.journal.schema import AckRow
from broadcastd.journal.store import Journal
from broadcastd.node.agent import NodeAgent
from broadcastd.node.player import NullPlayer
from broadcastd.node.settings import NodeBroker, NodeConfig, NodeIdentity
from broadcastd.transport.credentials import Credentials

if TYPE_CHECKING:
    import subprocess
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from support.e2e import E2E
    from support.linklab import Lab, Link

DAEMON_START_S = 60.0
CONNECT_S = 30.0
STOP_S = 20.0


@dataclass
class Speaker:
    """One reference agent behind one lab link."""

    agent: NodeAgent
    player: NullPlayer
    link: Link
    task: asyncio.Task[None]

    @property
    def id(self) -> str:
        return self.agent.id


@contextlib.asynccontextmanager
async def lab_daemon(lab: Lab, e2e: E2E, log_path: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """The commune's daemon running inside `lab.core` for the block; SIGTERM afterwards."""
    proc = spawn(e2e.config_path, e2e.offset, log_path, prefix=lab.exec_prefix())
    with reaped(proc):
        await wait_log(log_path, "broadcastd running", proc, DAEMON_START_S)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.to_thread(proc.wait), STOP_S)


@contextlib.asynccontextmanager
async def lab_speakers(
    lab: Lab,
    e2e: E2E,
    *,
    clock: Callable[[], float] | None = None,
    heartbeat_s: float = 5.0,
) -> AsyncIterator[list[Speaker]]:
    """The commune's nodes in config order, node i behind lab link i (as many as there are
    links), connected for the block, stopped cleanly afterwards. `clock` is the speakers'
    own clock (default: the daemon's)."""
    config = e2e.config
    creds = Credentials.load_or_create(config)
    key = protocol.public_key_b64(
        protocol.load_private_key(config.signing.private_key_file).public_key()
    )
    nodes = [(n.id, h.id) for h in config.hamlets for n in h.nodes]
    own_clock = clock or e2e.clock
    speakers: list[Speaker] = []
    try:
        for (node, hamlet), link in zip(nodes, lab.links, strict=False):
            node_config = NodeConfig(
                node=NodeIdentity(id=node, hamlet=hamlet, commune=config.commune.id),
                broker=NodeBroker(
                    url=await link.mqtt_url(), username=node, password=creds.passwords[node]
                ),
                public_key=key,
                cache_dir=e2e.root / "nodes" / node,
                heartbeat=dt.timedelta(seconds=heartbeat_s),
                keepalive=config.nodes.keepalive,
            )
            player = NullPlayer(clock=own_clock)
            agent = NodeAgent(node_config, clock=own_clock, player=player)
            speakers.append(Speaker(agent, player, link, asyncio.create_task(agent.run())))
        async with asyncio.timeout(CONNECT_S):
            for speaker in speakers:
                await speaker.agent.link.connected.wait()
        yield speakers
    finally:
        for speaker in speakers:
            speaker.agent.stop()
        if speakers:
            await asyncio.wait([s.task for s in speakers], timeout=STOP_S)
        for speaker in speakers:
            if not speaker.task.done():
                speaker.task.cancel()


async def control(e2e: E2E, **payload: Any) -> dict[str, Any]:
    """A request to the running daemon over its control socket (as `broadcastd announce`)."""
    return await request(e2e.config.state_dir / "broadcastd.sock", payload, timeout=60)


async def emergency(e2e: E2E, text: str) -> list[str]:
    """`broadcastd announce --now --priority emergency TEXT` to every hamlet; its playlist ids."""
    result = await control(
        e2e,
        cmd="announce",
        text=text,
        lang="vi",
        hamlets="all",
        priority="emergency",
        now=True,
        exercise=False,
        operator=None,
    )
    return list(result["playlists"])


def journal_acks(e2e: E2E) -> list[AckRow]:
    """Every ack the daemon has journaled so far, oldest first."""
    journal = Journal.open(e2e.config.state_dir / "journal.sqlite3", readonly=True)
    try:
        rows = journal._query(  # a read-only look from outside the daemon
            "SELECT node, hamlet, playlist, status, ts, detail, received_at FROM acks ORDER BY id"
        )
    finally:
        journal.close()
    return [AckRow(*row) for row in rows]
