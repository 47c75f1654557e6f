"""Reachability end to end (issue 6, acceptance 1): real mosquitto, real agents, real time.

- A `broadcastd-node` process killed with SIGKILL: the kernel closes its socket, mosquitto publishes
  its Last Will, and the daemon's registry shows it `offline` within 1.5 x keepalive + 1 s.
- A `broadcastd-node` process frozen with SIGSTOP (a speaker whose board hangs, or whose 3G link
  dies without a FIN): the socket stays open, so only mosquitto's keepalive check (1.5 x keepalive
  after the last packet) can notice. mosquitto 2.0 runs that check only every 5-6 s
  (`last_keepalive_check + 5 < now`, whole seconds), so the bound there is 1.5 x keepalive + 6 s
  + 1 s; for the production keepalive of 30 s that is still under 1.8 x keepalive.
- An in-process reference agent whose heartbeat task is cancelled while its MQTT connection (and
  its keepalive pings) go on: `stale` at 2 x heartbeat and `offline` at 3 x heartbeat (+-1 s),
  measured from the last heartbeat a separate subscriber saw on the broker.

The heartbeat is 30 s in the kill/freeze tests, so the registry's silence sweep (60/90 s) cannot be
what marks the node offline there: only the Last Will can, and the journal's cause says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import yaml
from support.e2e import E2E, wait_for, write_commune

from broadcastd import protocol
from broadcastd.transport.credentials import Credentials

if TYPE_CHECKING:
    from broadcastd.controller.daemon import Daemon

BIN = Path(sys.executable).parent
KEEPALIVE_S = 5.0  # the agent's floor (it never asks mosquitto for less than 5 s)
KILLED_BOUND_S = 1.5 * KEEPALIVE_S + 1.0  # acceptance 1
MOSQUITTO_CHECK_S = 6.0  # mosquitto 2.0 looks at keepalives when 5 whole seconds have passed
FROZEN_BOUND_S = 1.5 * KEEPALIVE_S + MOSQUITTO_CHECK_S + 1.0
POLL_S = 0.02


def node_yaml(e2e: E2E, node: str, *, heartbeat: str, keepalive: str) -> Path:
    """A node.yaml for `node` with its broker credentials inline (what `node-config` prints)."""
    hamlet = node.split("-", maxsplit=1)[0]
    key = protocol.load_private_key(e2e.config.signing.private_key_file)
    doc = {
        "node": {"id": node, "hamlet": hamlet, "commune": e2e.config.commune.id},
        "broker": {
            "url": f"mqtt://{e2e.config.broker.listen}",
            "username": node,
            "password": Credentials.load_or_create(e2e.config).password(node),
        },
        "public_key": protocol.public_key_b64(key.public_key()),
        "cache_dir": str(e2e.root / "nodes" / node),
        "player": None,
        "heartbeat": heartbeat,
        "keepalive": keepalive,
    }
    path = e2e.root / f"{node}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def start_node(e2e: E2E, node: str) -> subprocess.Popen[bytes]:
    config = node_yaml(e2e, node, heartbeat="30s", keepalive=f"{KEEPALIVE_S:.0f}s")
    with (e2e.root / f"{node}.log").open("wb") as logf:
        return subprocess.Popen(
            [BIN / "broadcastd-node", "-c", config], stdout=logf, stderr=subprocess.STDOUT
        )


async def seconds_until(daemon: Daemon, node: str, state: str, limit: float) -> float:
    """Real seconds from now until the registry shows `node` in `state`; fail after `limit`."""
    start = time.monotonic()
    while daemon.registry.state(node) != state:
        if time.monotonic() - start > limit:
            raise AssertionError(f"{node} not {state} after {limit:.1f}s")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - start


async def ages_at_stale_and_offline(
    daemon: Daemon, node: str, beats: list[float], limit: float
) -> tuple[float | None, float | None]:
    """Seconds after the last heartbeat in `beats` at which `node` turned stale, then offline."""
    start = time.monotonic()
    stale_age = offline_age = None
    while offline_age is None and time.monotonic() - start < limit:
        state = daemon.registry.state(node)
        age = time.monotonic() - beats[-1]
        if state == "stale" and stale_age is None:
            stale_age = age
        if state == "offline":
            offline_age = age
        await asyncio.sleep(POLL_S)
    return stale_age, offline_age


async def cancel_task(name: str) -> None:
    task = next(t for t in asyncio.all_tasks() if t.get_name() == name)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _killed_or_frozen_goes_offline(
    tmp_path: Path, sig: signal.Signals, bound: float
) -> float:
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, heartbeat="30s", keepalive="5s")
    node = "h00-n0"
    # the node process runs on real time
    async with e2e.running(fleet=False, clock=time.time, scheduling=False) as run:
        daemon = run.daemon
        proc = start_node(e2e, node)
        try:
            await wait_for(lambda: daemon.registry.state(node) == "online", 15, "node online")
            # Let the connection go quiet first, so a frozen node's keepalive is really tested.
            await asyncio.sleep(1.0)
            proc.send_signal(sig)
            latency = await seconds_until(daemon, node, "offline", bound + 2)
        finally:
            proc.kill()  # also ends a stopped process
            await asyncio.to_thread(proc.wait, 10)
        await daemon.journal.flush()
        cause = daemon.journal.latest_transitions()[node].cause
    assert latency <= bound, f"offline {latency:.2f}s after {sig.name}, bound {bound:.1f}s"
    # Heartbeat 30 s: silence would need 90 s; the Last Will is what made it offline.
    assert cause == "offline message (last will or shutdown)", cause
    return latency


async def test_agent_process_killed_with_sigkill_is_offline_within_1_5_keepalive_plus_1s(tmp_path):
    await _killed_or_frozen_goes_offline(tmp_path, signal.SIGKILL, KILLED_BOUND_S)


async def test_frozen_agent_process_is_offline_by_broker_keepalive_within_bound(tmp_path):
    latency = await _killed_or_frozen_goes_offline(tmp_path, signal.SIGSTOP, FROZEN_BOUND_S)
    # The socket stayed open: only the keepalive check can have noticed, which takes at least
    # 1.5 x keepalive after the node's last packet, itself at most one keepalive before the stop.
    assert latency >= 0.5 * KEEPALIVE_S - 0.5, f"offline after only {latency:.2f}s"


async def test_silent_but_connected_agent_is_stale_at_2x_and_offline_at_3x_heartbeat(tmp_path):
    hb = 2.0
    e2e = write_commune(
        tmp_path, hamlets=1, nodes_per_hamlet=2, heartbeat=f"{hb:.0f}s", keepalive="5s"
    )
    mute, chatty = "h00-n0", "h00-n1"
    host, port = e2e.config.broker.listen.rsplit(":", 1)
    user, password = Credentials.load_or_create(e2e.config).monitor  # the daemon's stays up
    root = f"bcast/v1/{e2e.config.commune.id}/node"
    beats: list[float] = []  # monotonic arrival of the mute node's heartbeats at our subscriber
    offline_seen: list[str] = []
    stack = contextlib.AsyncExitStack()

    async def observe(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            if topic == f"{root}/{mute}/heartbeat":
                beats.append(time.monotonic())
            elif (
                topic == f"{root}/{mute}/state"
                and isinstance(message.payload, bytes)
                and json.loads(message.payload).get("state") == "offline"
            ):
                offline_seen.append(topic)

    async with e2e.running(fleet=False, scheduling=False) as run:
        daemon = run.daemon
        client = await stack.enter_async_context(
            aiomqtt.Client(
                host, int(port), username=user, password=password,
                protocol=aiomqtt.ProtocolVersion.V5,
                identifier=f"reachability-observer-{os.getpid()}",
            )
        )  # fmt: skip
        await client.subscribe(f"{root}/+/heartbeat", qos=1)
        await client.subscribe(f"{root}/+/state", qos=1)
        observer = run.tasks.create_task(observe(client))
        fleet = e2e.fleet(nodes=[mute, chatty], heartbeat_s=hb)
        run.start(fleet)
        await wait_for(lambda: len(beats) >= 2, 15, "two heartbeats from the mute node")
        assert daemon.registry.state(mute) == "online"
        await cancel_task(f"{mute}-heartbeat")  # the agent's heartbeat task; its link stays up
        stale_age, offline_age = await ages_at_stale_and_offline(daemon, mute, beats, 4 * hb + 2)
        still_connected = fleet.agents[mute].agent.link.connected.is_set()  # type: ignore[union-attr]
        chatty_state = daemon.registry.state(chatty)
        wills = list(offline_seen)  # before the clean stop below publishes `offline` itself
        await daemon.journal.flush()
        cause = daemon.journal.latest_transitions()[mute].cause
        observer.cancel()
        await stack.aclose()

    assert stale_age is not None, "never stale"
    assert offline_age is not None, "never offline"
    assert abs(stale_age - 2 * hb) <= 1.0, f"stale {stale_age:.2f}s after the last heartbeat"
    assert abs(offline_age - 3 * hb) <= 1.0, f"offline {offline_age:.2f}s after the last heartbeat"
    # The connection stayed: no Last Will, the silence sweep did it.
    assert still_connected
    assert wills == []
    assert cause.startswith("silent"), cause
    assert chatty_state == "online"  # a node that keeps beating is untouched
