"""Speaker-side controls (issue 18) with the real daemon and agent: node.yaml's amplifier commands
run around playback, and `amp_off` also after a stop, after a cancel and when the agent starts
again after a crash; the telemetry command's readings reach the heartbeats, /metrics,
`broadcastd nodes` and the daemon's `nodes` read (the console's)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shlex
import sys
from typing import TYPE_CHECKING

from prometheus_client import generate_latest
from support.e2e import wait_for, write_commune

from broadcastd import protocol
from broadcastd.cli.nodes import node_states
from broadcastd.journal.store import Journal
from broadcastd.node.agent import NodeAgent
from broadcastd.node.hooks import AMP_HOLD_S
from broadcastd.node.player import NullPlayer
from broadcastd.node.settings import NodeBroker, NodeConfig, NodeIdentity
from broadcastd.transport.credentials import Credentials

if TYPE_CHECKING:
    from pathlib import Path

    from support.e2e import E2E

TELEMETRY = '{"battery_pct": 62, "mains": false, "temperature_c": 41.5, "signal_dbm": -97}'


def command(log: Path, word: str) -> str:
    code = f"open({str(log)!r}, 'a').write({word!r} + '\\n')"
    return shlex.join([sys.executable, "-c", code])


def speaker_config(e2e: E2E, log: Path) -> NodeConfig:
    config = e2e.config
    [hamlet] = config.hamlets
    [node] = hamlet.nodes
    key = protocol.load_private_key(config.signing.private_key_file).public_key()
    return NodeConfig(
        node=NodeIdentity(id=node.id, hamlet=hamlet.id, commune=config.commune.id),
        broker=NodeBroker(
            url=config.broker.url_for_nodes,
            username=node.id,
            password=Credentials.load_or_create(config).passwords[node.id],
        ),
        public_key=protocol.public_key_b64(key),
        cache_dir=e2e.root / "node",
        heartbeat=dt.timedelta(seconds=1),
        amp_on=command(log, "on"),
        amp_off=command(log, "off"),
        amp_warmup=dt.timedelta(seconds=0.3),
        telemetry=shlex.join([sys.executable, "-c", f"print({TELEMETRY!r})"]),
    )


def switches(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


async def test_amplifier_and_telemetry_around_a_real_bulletin(tmp_path):
    e2e = write_commune(
        tmp_path,
        hamlets=1,
        nodes_per_hamlet=1,
        play_in=4.0,
        extra=("metrics: {listen: '127.0.0.1:9', per_node: true}",),
    )
    log = tmp_path / "amp.log"
    async with e2e.running(fleet=False) as run:
        config = speaker_config(e2e, log)
        player = NullPlayer(clock=e2e.clock, seconds=1.5)
        agent = NodeAgent(config, clock=e2e.clock, player=player)
        task = asyncio.create_task(agent.run())
        await wait_for(lambda: switches(log) == ["off"], 10, "amp_off at start")
        await wait_for(lambda: player.plays, 30, "the bulletin to start")
        assert switches(log) == ["off", "on"]  # switched on (and warmed up) before the sound
        await run.daemon.ops.handle({"cmd": "stop", "hamlets": "all"})
        await wait_for(lambda: switches(log) == ["off", "on", "off"], 10, "amp_off after stop")
        assert len(player.finished) < 2  # the stop cut the bulletin short

        await wait_for(lambda: "h00-n0" in run.daemon.telemetry.readings, 10, "telemetry")
        scrape = generate_latest(run.daemon.metrics.registry).decode()
        assert 'broadcastd_node_battery_percent{hamlet="h00",node="h00-n0"} 62.0' in scrape
        assert 'broadcastd_node_mains_power{hamlet="h00",node="h00-n0"} 0.0' in scrape
        assert 'broadcastd_nodes_on_battery{hamlet="h00"} 1.0' in scrape
        journal = Journal.open(e2e.config.state_dir / "journal.sqlite3", readonly=True)
        try:
            [row] = node_states(e2e.config, journal, None)
        finally:
            journal.close()
        assert isinstance(row["telemetry"], dict)
        assert row["telemetry"]["battery_pct"] == 62.0
        assert row["telemetry"]["temperature_c"] == 41.5
        [read] = (await run.daemon.ops.handle({"cmd": "nodes"}))["nodes"]
        assert read["telemetry"]["battery_pct"] == 62.0  # what the console asks the daemon

        # An emergency switches the amplifier on; the agent crashes while it plays...
        await run.daemon.ops.handle(
            {"cmd": "announce", "text": "Lũ quét, sơ tán ngay.", "priority": "emergency"}
        )
        await wait_for(lambda: switches(log)[-1:] == ["on"], 20, "the emergency on air")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(AMP_HOLD_S + 0.5)
        assert switches(log)[-1] == "on"  # left on by the crash
        # ...and the restarted agent switches it off before anything else.
        long_player = NullPlayer(clock=e2e.clock, seconds=60.0)  # still on air at the cancel
        again = NodeAgent(config, clock=e2e.clock, player=long_player)
        restarted = asyncio.create_task(again.run())
        await wait_for(lambda: switches(log)[-1] == "off", 10, "amp_off after the restart")
        crashed = len(switches(log))

        # A cancel of what is on air switches it off too.
        answer = await run.daemon.ops.handle(
            {"cmd": "announce", "text": "Họp dân lúc tám giờ.", "priority": "priority", "now": True}
        )
        await wait_for(lambda: long_player.plays, 30, "the announcement on air")
        assert switches(log)[crashed:] == ["on"]
        await run.daemon.ops.handle({"cmd": "cancel", "id": answer["playlists"][0]})
        await wait_for(lambda: switches(log)[crashed:] == ["on", "off"], 10, "amp_off after cancel")
        assert not long_player.finished  # the cancel cut it short
        again.stop()
        await asyncio.wait_for(restarted, 10)
