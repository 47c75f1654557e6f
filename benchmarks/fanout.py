"""Fan-out: N reference agents over H hamlets fetch ~1 MB of audio each; time until all ack ready.

System: the daemon (embedded mosquitto with its generated password file and ACL, journal,
Dispatcher) publishes one distinct ~1 MB clip per hamlet and a signed playlist per hamlet through
`Dispatcher.publish` (retained 64 KiB chunks, then the playlists; what a slot dispatch does); N
simulated reference agents (already connected, as at a real slot; the clock starts once the broker
has worked off their connects, see `settle`) verify the playlist, subscribe
to the chunks they lack, write them to their cache, check the sha256 and ack `ready`. The clock
stops when the daemon has journaled N `ready` acks.

Baseline, same run, same broker: N plain aiomqtt subscribers (connected beforehand); one plain
aiomqtt publisher puts the same bytes on retained chunk topics, then each subscriber subscribes
to its hamlet's chunks and counts bytes until it has the whole clip. No signatures, no disk, no
acks: the floor the system is compared with; its clock also starts on a settled broker. The
agents' only worker-thread hops are, per playlist, one durable state write and one open of the
partial files, and per clip one fsync; see SIM_THREADS for the pool they share.

Prints `fanout ready: ratio=<system/baseline> target=1.5` and `fanout peak rss: <MB> MB` (the peak
resident set of this one process, which holds the daemon, every agent and the baseline clients).
Usage: `python benchmarks/fanout.py [--nodes 1000] [--hamlets 10] [--mb 1.0]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomqtt

from broadcastd import protocol
from broadcastd.broker import CONTROLLER_USER, Credentials, free_port
from broadcastd.daemon import Daemon
from broadcastd.models import Clip
from broadcastd.sim import Fleet, fleet_nodes

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TARGET = 1.5
CONNECT_CONCURRENCY = 50
SETTLE_ROUNDS = 3
SETTLE_RTT_S = 0.05
SIM_THREADS = 32


def write_config(root: Path, hamlets: int, per_hamlet: int) -> Path:
    lines = [
        "commune: {id: bench, name: Bench, timezone: Asia/Ho_Chi_Minh}",
        f"broker: {{mode: embedded, listen: '127.0.0.1:{free_port()}'}}",
        "signing: {private_key_file: ed25519.key}",
        "state_dir: state",
        "slots:",
        "  noon: {at: '11:30', max_duration: 15m, lead: 30m, catch_up: 20m}",
        "tts: {engines: [espeak], timeout: 10s}",
        "nodes: {heartbeat: 60s, keepalive: 60s}",
        "hamlets:",
    ]
    for h in range(hamlets):
        nodes = ", ".join(f"{{id: b{h:02d}-{n:03d}, households: 1}}" for n in range(per_hamlet))
        lines += [f"  - id: b{h:02d}", f"    name: B {h}", f"    households: {per_hamlet}"]
        lines.append(f"    nodes: [{nodes}]")
    path = root / "commune.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    protocol.generate_private_key(root / "ed25519.key")
    return path


def make_clips(root: Path, hamlets: list[str], size: int) -> dict[str, Clip]:
    """One distinct clip per hamlet (random bytes: nodes verify sha256, they never decode)."""
    clips: dict[str, Clip] = {}
    (root / "clips").mkdir()
    for hamlet in hamlets:
        data = os.urandom(size)
        sha = hashlib.sha256(data).hexdigest()
        path = root / "clips" / f"{sha}.mp3"
        path.write_bytes(data)
        clips[hamlet] = Clip(sha, path, size, 60_000)
    return clips


def envelope(daemon: Daemon, hamlet: str, clip: Clip, now: int) -> dict[str, object]:
    item = protocol.PlaylistItem(
        sha256=clip.sha256,
        bytes=clip.size,
        chunks=protocol.chunk_count(clip.size),
        duration_ms=clip.duration_ms,
        title="bench",
        lang="vi",
        announcement="bench",
    )
    key = protocol.load_private_key(daemon.config.signing.private_key_file)
    return protocol.sign(
        protocol.playlist_envelope(
            commune=daemon.config.commune.id,
            hamlet=hamlet,
            playlist_id=f"bench-{hamlet}-{clip.sha256[:8]}",
            slot="noon",
            play_at=now + 3600,  # far ahead: the benchmark measures prefetch, nothing plays
            expires_at=now + 7200,
            priority="normal",
            issued_at=now,
            items=[item],
            seq=daemon.dispatcher.next_adhoc_number(),
        ),
        key,
    )


def acks_ready(daemon: Daemon, hamlets: list[str]) -> int:
    total = 0
    for hamlet in hamlets:
        value = daemon.metrics.registry.get_sample_value(
            "broadcastd_playlist_acks_total", {"hamlet": hamlet, "status": "ready"}
        )
        total += int(value or 0)
    return total


async def wait_until(predicate, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"fanout: timed out after {limit_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def settle(
    publish: Callable[[str, bytes], Awaitable[object]], topic: str, limit_s: float
) -> None:
    """Wait until the broker answers a QoS 1 probe at once, SETTLE_ROUNDS times in a row.

    Connecting N persistent sessions (and clearing the baseline's retained chunks) leaves
    mosquitto seconds of autosaves to work off (`autosave_interval 1`); a slot is dispatched to
    speakers connected long before, so both sides start their clock on a settled broker."""
    deadline = time.monotonic() + limit_s
    calm = 0
    while calm < SETTLE_ROUNDS:
        if time.monotonic() > deadline:
            raise SystemExit(f"fanout: broker still busy after {limit_s:.0f}s")
        sent = time.monotonic()
        await publish(topic, b"probe")  # not retained, nobody subscribed: changes nothing
        calm = calm + 1 if time.monotonic() - sent < SETTLE_RTT_S else 0
        await asyncio.sleep(0.05)


async def system_run(daemon: Daemon, fleet: Fleet, clips: dict[str, Clip], limit_s: float) -> float:
    hamlets = list(clips)
    await wait_until(
        lambda: (
            sum(1 for v in daemon.registry.snapshot() if v.state == "online") >= len(fleet.agents)
        ),
        limit_s,
        "every agent online",
    )
    await settle(daemon.link.publish, f"bcast/v1/{daemon.config.commune.id}/bench-probe", limit_s)
    now = int(time.time())
    envs = {h: envelope(daemon, h, clips[h], now) for h in hamlets}
    for env in envs.values():
        await daemon.journal.record_dispatch(env)
    started = time.monotonic()
    # the Dispatcher's own publish step: retained audio chunks, then the signed playlists
    await daemon.dispatcher.publish(list(clips.values()), list(envs.values()), urgent=False)
    await wait_until(
        lambda: acks_ready(daemon, hamlets) >= len(fleet.agents), limit_s, "every ack ready"
    )
    return time.monotonic() - started


async def baseline_run(  # noqa: PLR0913 - the baseline's knobs, explicit
    *,
    host: str,
    port: int,
    password: str,
    clips: dict[str, Clip],
    per_hamlet: int,
    limit_s: float,
) -> float:
    """Plain aiomqtt: publish the clips as retained chunks, N subscribers fetch their hamlet's."""
    root = f"bcast/v1/bench/baseline-{os.getpid()}"
    hamlets = list(clips)
    data = {h: clips[h].path.read_bytes() for h in hamlets}
    received = dict.fromkeys(range(per_hamlet * len(hamlets)), 0)
    done = asyncio.Event()
    go = asyncio.Event()
    finished = 0
    connected = 0
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def subscriber(n: int) -> None:
        nonlocal finished, connected
        hamlet = hamlets[n % len(hamlets)]
        want = len(data[hamlet])
        async with sem:
            client = aiomqtt.Client(
                host,
                port,
                username=CONTROLLER_USER,
                password=password,
                identifier=f"baseline-{n}",
                protocol=aiomqtt.ProtocolVersion.V5,
                max_queued_incoming_messages=0,
            )
            await client.__aenter__()
        try:
            connected += 1
            await go.wait()
            await client.subscribe(f"{root}/{hamlet}/+", qos=1)
            async for message in client.messages:
                received[n] += len(message.payload)  # type: ignore[arg-type]
                if received[n] >= want:
                    finished += 1
                    if finished == len(received):
                        done.set()
                    break
            await done.wait()
        finally:
            await client.__aexit__(None, None, None)

    tasks = [asyncio.create_task(subscriber(n)) for n in range(len(received))]
    await wait_until(lambda: connected == len(received), limit_s, "baseline subscribers")
    async with aiomqtt.Client(
        host,
        port,
        username=CONTROLLER_USER,
        password=password,
        identifier="baseline-publisher",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as pub:

        async def probe(topic: str, payload: bytes) -> None:
            await pub.publish(topic, payload, qos=1)

        await settle(probe, f"{root}/probe", limit_s)  # connected beforehand, like the daemon
        started = time.monotonic()
        for hamlet in hamlets:
            for index, chunk in enumerate(protocol.iter_chunks(data[hamlet])):
                await pub.publish(f"{root}/{hamlet}/{index}", chunk, qos=1, retain=True)
        go.set()
        await asyncio.wait_for(done.wait(), limit_s)
        elapsed = time.monotonic() - started
        for hamlet in hamlets:  # leave no retained baseline bytes behind
            for index in range(protocol.chunk_count(len(data[hamlet]))):
                await pub.publish(f"{root}/{hamlet}/{index}", b"", qos=1, retain=True)
    await asyncio.gather(*tasks)
    return elapsed


async def bench(nodes: int, hamlets: int, size: int, limit_s: float) -> tuple[float, float]:
    per_hamlet = nodes // hamlets
    # Each real speaker fsyncs on its own board; here 1000 agents share one process, and the
    # default executor (min(32, cpus + 4) = 6 threads here) would queue their fsyncs (one durable
    # state write per playlist, one per verified clip) 6 at a time. 32 lets the filesystem batch
    # them into shared journal commits, as independent boards would not wait on each other:
    # measured at 1000 agents, 13.0-13.5 s vs 15.8-16.3 s with 6 threads; 64 threads: 14.7 s.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=SIM_THREADS))
    with tempfile.TemporaryDirectory(prefix="broadcastd-fanout-") as tmp:
        root = Path(tmp)
        config_path = write_config(root, hamlets, per_hamlet)
        daemon = Daemon(
            config_path,
            engines=["espeak"],
            serve_metrics=False,
            watch_files=False,
            handle_signals=False,
            scheduling=False,
        )
        clips = make_clips(root, [h.id for h in daemon.config.hamlets], size)
        async with asyncio.TaskGroup() as tg:
            daemon_task = tg.create_task(daemon.run(), name="daemon")
            await asyncio.wait_for(daemon.ready.wait(), 30)
            await daemon.link.wait_connected(30)
            creds = Credentials.load_or_create(daemon.config)
            host, _, port = daemon.config.broker.listen.rpartition(":")
            baseline = await baseline_run(
                host=host,
                port=int(port),
                password=creds.controller[1],
                clips=clips,
                per_hamlet=per_hamlet,
                limit_s=limit_s,
            )
            key = protocol.load_private_key(daemon.config.signing.private_key_file)
            fleet = Fleet(
                daemon.config,
                fleet_nodes(daemon.config, creds.passwords),
                broker_url=f"mqtt://{daemon.config.broker.listen}",
                public_key=protocol.public_key_b64(key.public_key()),
                cache_root=root / "nodes",
                heartbeat_s=60.0,
            )
            fleet_task = tg.create_task(fleet.run(), name="fleet")
            try:
                system = await system_run(daemon, fleet, clips, limit_s)
            finally:
                fleet.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(fleet_task), 30)
                daemon.request_stop()
            await daemon_task
    return system, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--hamlets", type=int, default=10)
    parser.add_argument("--mb", type=float, default=1.0, help="audio per hamlet, MiB")
    parser.add_argument("--timeout", type=float, default=150.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.nodes + 1024))  # agents + baseline + mosquitto (inherits)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    size = int(args.mb * 1024 * 1024)
    t0 = time.monotonic()
    system, baseline = asyncio.run(bench(args.nodes, args.hamlets, size, args.timeout))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stderr.write(
        f"fanout: {args.nodes} agents / {args.hamlets} hamlets / {size} B per hamlet: "
        f"system {system:.2f}s, baseline {baseline:.2f}s, whole run {time.monotonic() - t0:.0f}s "
        f"({dt.datetime.now(tz=dt.UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print(f"fanout ready: ratio={system / baseline:.2f} target={TARGET}")
    print(f"fanout peak rss: {peak:.0f} MB")


if __name__ == "__main__":
    main()
