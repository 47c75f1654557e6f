"""Lanes: which way of fetching audio keeps a weak link free for playlists, acks and emergencies.

System: the link lab (tests/support/linklab.py) on `3g-weak` without its stalls (256/128 kbit/s,
400 ms RTT), mosquitto with the daemon's generated settings (persistence, autosave on changes)
in the core namespace, one speaker behind one shaped link, plain aiomqtt on both sides (no agent,
no daemon: only the fetch strategy differs). The speaker downloads a routine clip; 6 s in, the
controller publishes an emergency's 1-chunk clip and then its playlist (as the daemon does), and
the speaker publishes a QoS 1 ack. The speaker fetches the emergency clip as soon as the
playlist arrives (on its control connection where it has two), pausing the routine download
where it can (a window can pause; a wildcard subscription cannot).

Four strategies, each on a fresh connection: one connection or a control + bulk pair, times a
`audio/<sha>/+` wildcard or a window of exact chunk topics (two chunks, what node.lanes sizes
for this link). Per strategy: seconds from the emergency's publish until its playlist arrives,
until the ack's PUBACK, until the emergency clip is complete; and the routine download's time
against the floor (its bytes at the shaped rate).

Prints `# lanes <strategy>: ...` per strategy and `lanes emergency: <s> target=<s>` for the node's
strategy (window + bulk lane), the bound issue 18 sets: 5 s + emergency bytes / bandwidth.
Usage: `python benchmarks/lanes.py [--mb 0.75]` (as root).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the link lab
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.linklab import BROKER_HOST, BROKER_PORT, PROFILES, Lab

from broadcastd import protocol
from broadcastd.transport.broker import port_open
from broadcastd.transport.brokerconf import BrokerOptions, mosquitto_conf
from broadcastd.transport.link import RECEIVE_MAXIMUM

if TYPE_CHECKING:
    from collections.abc import Iterator

ISSUE_AT_S = 6.0
WINDOW = 2
EMERGENCY_BYTES = 20_000  # ~5 s of speech at 32 kbit/s: one chunk
ROOT_TOPIC = "bcast/v1/lab"
STRATEGIES = (("one", False), ("one", True), ("two", False), ("two", True))


def client(url: str, name: str) -> aiomqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = RECEIVE_MAXIMUM  # as MqttLink: no 20-message cap on what is in flight
    return aiomqtt.Client(
        host,
        int(port),
        identifier=name,
        protocol=aiomqtt.ProtocolVersion.V5,
        properties=props,
        max_queued_incoming_messages=0,
    )


@dataclass
class Run:
    """One strategy's download, as the speaker sees it."""

    routine: str
    chunks: int
    urgent: str
    window: bool
    got: set[int] = field(default_factory=set)
    asked: int = 0
    paused: bool = False
    marks: dict[str, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0

    def mark(self, what: str) -> None:
        self.marks.setdefault(what, time.monotonic())


async def refill(run: Run, bulk: aiomqtt.Client) -> None:
    while not run.paused and run.asked < run.chunks and run.asked - len(run.got) < WINDOW:
        index = run.asked
        run.asked += 1  # before the await: the two lanes' consumers refill concurrently
        await bulk.subscribe(f"{ROOT_TOPIC}/audio/{run.routine}/{index}", qos=1, timeout=600)


async def consume(
    run: Run, source: aiomqtt.Client, control: aiomqtt.Client, bulk: aiomqtt.Client
) -> None:
    async for msg in source.messages:
        topic = str(msg.topic)
        payload = bytes(msg.payload) if isinstance(msg.payload, bytes | bytearray) else b""
        run.received += len(payload)
        if topic.endswith("/playlist") and payload:
            run.mark("playlist")
            run.paused = run.window
            await control.subscribe(f"{ROOT_TOPIC}/audio/{run.urgent}/0", qos=1, timeout=600)
        elif f"/audio/{run.urgent}/" in topic:
            run.mark("emergency")
            run.paused = False
            await refill(run, bulk)
        elif f"/audio/{run.routine}/" in topic:
            run.got.add(int(topic.rsplit("/", 1)[1]))
            if len(run.got) == run.chunks:
                run.mark("routine")
                run.done.set()
            elif run.window:
                await refill(run, bulk)


async def strategy(
    lab: Lab, controller: aiomqtt.Client, name: str, *, window: bool, clip: bytes
) -> dict[str, float]:
    lanes, _ = name.split("+") if "+" in name else (name, "")
    tag = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    routine, urgent = f"r{abs(hash(tag))}", f"u{abs(hash(tag))}"
    chunks = list(protocol.iter_chunks(clip))
    for index, chunk in enumerate(chunks):
        await controller.publish(f"{ROOT_TOPIC}/audio/{routine}/{index}", chunk, qos=1, retain=True)
    run = Run(routine, len(chunks), urgent, window)
    url = await lab.links[0].mqtt_url()
    async with contextlib.AsyncExitStack() as stack:
        control = await stack.enter_async_context(client(url, f"{tag}-c"))
        bulk = control
        if lanes == "two":
            bulk = await stack.enter_async_context(client(url, f"{tag}-b"))
        await control.subscribe(f"{ROOT_TOPIC}/hamlet/{tag}/playlist", qos=1, timeout=600)
        readers = [asyncio.create_task(consume(run, control, control, bulk))]
        if bulk is not control:
            readers.append(asyncio.create_task(consume(run, bulk, control, bulk)))
        started = time.monotonic()
        if window:
            await refill(run, bulk)
        else:
            await bulk.subscribe(f"{ROOT_TOPIC}/audio/{routine}/+", qos=1, timeout=600)
        await asyncio.sleep(ISSUE_AT_S)
        issued = time.monotonic()
        await controller.publish(
            f"{ROOT_TOPIC}/audio/{urgent}/0", os.urandom(EMERGENCY_BYTES), qos=1, retain=True
        )
        await controller.publish(f"{ROOT_TOPIC}/hamlet/{tag}/playlist", b"{}", qos=1, retain=True)
        ack_sent = time.monotonic()
        await control.publish(f"{ROOT_TOPIC}/node/{tag}/ack", b"{}", qos=1, timeout=600)
        ack = time.monotonic() - ack_sent
        await asyncio.wait_for(run.done.wait(), 600)
        while "emergency" not in run.marks:  # noqa: ASYNC110 - marked by the consumer
            await asyncio.sleep(0.05)
        for reader in readers:
            reader.cancel()
    return {
        "playlist": run.marks["playlist"] - issued,
        "ack": ack,
        "emergency": run.marks["emergency"] - issued,
        "routine": run.marks["routine"] - started,
    }


@contextlib.contextmanager
def broker(lab: Lab, directory: Path) -> Iterator[subprocess.Popen[bytes]]:
    """mosquitto with the daemon's generated settings, inside the lab's core namespace."""
    opts = BrokerOptions(host=BROKER_HOST, port=BROKER_PORT, persistence=True)
    conf = directory / "mosquitto.conf"
    conf.write_text(mosquitto_conf(opts, directory), encoding="utf-8")
    with (directory / "mosquitto.log").open("ab") as logf:
        proc = subprocess.Popen(
            [*lab.exec_prefix(), "mosquitto", "-c", str(conf)], stdout=logf, stderr=logf
        )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


async def main_async(size: int) -> None:
    profile = PROFILES["3g-weak"].calm()
    clip = os.urandom(size)
    async with Lab.running(links=1, profile=profile) as lab:
        print(f"# lab: {lab.describe()}")
        with tempfile.TemporaryDirectory(prefix="broadcastd-lanes-") as tmp, broker(lab, Path(tmp)):
            core = await lab.core_url()
            host, port = core.removeprefix("mqtt://").split(":")
            for _ in range(100):
                if port_open(host, int(port)):
                    with contextlib.suppress(aiomqtt.MqttError):
                        async with client(core, "probe"):
                            break
                await asyncio.sleep(0.1)
            floor = size / profile.down_bytes_per_s
            bound = 5 + EMERGENCY_BYTES / profile.down_bytes_per_s
            results = {}
            async with client(core, f"controller-{os.getpid()}") as controller:
                for lanes, window in STRATEGIES:
                    name = f"{lanes} connection{'s' if lanes == 'two' else ''}" + (
                        " + window" if window else " + wildcard"
                    )
                    got = await strategy(lab, controller, lanes, window=window, clip=clip)
                    results[name] = got
                    print(
                        f"# lanes {name}: playlist {got['playlist']:.1f} s, ack PUBACK "
                        f"{got['ack']:.1f} s, emergency clip {got['emergency']:.1f} s after "
                        f"issue; routine {got['routine']:.1f} s = {got['routine'] / floor:.2f} "
                        "x floor"
                    )
            node = results["two connections + window"]
            print(f"lanes emergency: {node['emergency']:.1f} s target={bound:.1f}")
            print(f"lanes routine: ratio={node['routine'] / floor:.2f} target=1.25")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=0.75, help="routine clip, MiB")
    args = parser.parse_args()
    asyncio.run(main_async(int(args.mb * 1024 * 1024)))


if __name__ == "__main__":
    main()
