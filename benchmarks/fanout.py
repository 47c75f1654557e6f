"""Fan-out: N reference agents over H hamlets fetch ~1 MB of audio each; time until all ack ready.

System: the daemon (embedded mosquitto with its generated password file and ACL, journal,
Dispatcher; in this process) publishes one distinct ~1 MB clip per hamlet and a signed playlist
per hamlet through `Dispatcher.publish` (retained 64 KiB chunks over the daemon's bulk links, then
the playlists; what a slot dispatch does); N simulated reference agents (already connected, as
at a real slot; the clock starts once the broker has worked off their connects, see `settle`)
verify the playlist, subscribe to the chunks they lack, write them to their cache (in a temp
tree of their own, apart from the daemon's and the broker's files: see FLEET_TMP in
_fanout_harness.py; kept until the benchmark ends: see FleetTrees there), check the sha256 and
ack `ready`.
The clock stops when the daemon has journaled N `ready` acks.

Baseline, same run, same broker: N plain aiomqtt subscribers (connected beforehand); one plain
aiomqtt publisher (also connected beforehand) puts the same bytes on retained chunk topics, as
the same MQTT messages (retained, with the message expiry DESIGN.md §5 gives audio chunks and the
system's chunks carry: a v5 property each subscriber's client parses on every chunk), then each
subscriber subscribes to its hamlet's chunks and counts bytes until it has the whole clip. The
broker ties each client id to its login, so the baseline's clients get logins of their own,
added to the generated password file and ACL for the run (`add_baseline_logins`).
No signatures, no disk, no acks: the floor the system is compared with; its clock also starts on
a settled broker.

Real speakers are independent boards, so both sides' clients run in K worker processes
(`_fanout_worker.py`; every K-th agent and every K-th baseline subscriber, so each worker holds the
same share of every hamlet on both sides), not in the daemon's event loop. The parent starts a
clock only after every worker has said its clients are connected. A run (fresh temp dir,
daemon and broker) is done once for K=1 and --rounds times for K=--workers (default: the CPU
count, 2..4), all printed; the required lines are for K=--workers. The agents' only worker-thread
hops are, per playlist, one durable state write, and per clip its check and fsync; the
SIM_THREADS pool is split over the K workers. Both sides' workers freeze their heap once their
clients are connected (`freeze_heap` in `_fanout_worker.py`: 500 agents in one process would
otherwise pay for full garbage collections over all 500, which no board pays). stderr also
shows the CPU seconds each process (daemon, mosquitto, workers) spent on each clock, to tell one
saturated loop from a saturated box.

Prints `fanout ready: ratio=<system/baseline> target=1.5`, the median over --rounds runs (each
run with its own temp dir, daemon, broker and fleet; every run's ratio is printed too), and
`fanout peak rss: <MB> MB` (the daemon process's peak resident set plus each worker's, the
largest of those runs; mosquitto is not counted). Then the same over TLS, `fanout ready over
TLS: ...`: the config has `broker.public` (certificate from `tls init`), the agents use it as
their bundles would and the baseline subscribers connect to the same listener, verifying the
same CA and host name; both sides' publishers stay on the daemon's loopback listener.
Usage: `python benchmarks/fanout.py [--nodes 1000] [--hamlets 10] [--mb 1.0] [--workers K]
[--rounds 3] [--transport plain|tls|both]`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomqtt
from _commune import write_commune
from _fanout_harness import CpuMeter, FleetTrees, Worker, all_say
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broadcastd import protocol
from broadcastd.controller.daemon import Daemon
from broadcastd.models import Clip
from broadcastd.transport import pki
from broadcastd.transport.audioout import AUDIO_EXPIRY_MARGIN_S
from broadcastd.transport.credentials import hash_password

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TARGET = 1.5
SETTLE_ROUNDS = 3
SETTLE_RTT_S = 0.05
# Each real speaker fsyncs on its own board; with the default executor (6 threads here) 1000
# agents' fsyncs queued 6 at a time: measured in one process, 13.0-13.5 s vs 15.8-16.3 s with 6
# threads, 14.7 s with 64. The workers share this total, SIM_THREADS // K each.
SIM_THREADS = 32
PLAY_IN_S, EXPIRES_IN_S = 3600, 7200  # the benchmark's playlists: nothing plays during a run


def chunk_properties() -> Properties:
    """The message expiry the Dispatcher gives these chunks (`expires_at` + the margin)."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = EXPIRES_IN_S + AUDIO_EXPIRY_MARGIN_S
    return props


def write_config(root: Path, hamlets: int, per_hamlet: int, *, tls: bool) -> Path:
    return write_commune(
        root,
        hamlets=hamlets,
        per_hamlet=per_hamlet,
        prefix="b",
        heartbeat="60s",
        keepalive="60s",
        tls=tls,
    )


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


def envelope(
    daemon: Daemon, hamlet: str, clip: Clip, now: int
) -> protocol.Signed[protocol.Playlist]:
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
    return protocol.seal(
        protocol.Playlist(
            commune=daemon.config.commune.id,
            hamlet=hamlet,
            id=f"bench-{hamlet}-{clip.sha256[:8]}",
            slot="noon",
            play_at=now + PLAY_IN_S,  # far ahead: the benchmark measures prefetch, nothing plays
            expires_at=now + EXPIRES_IN_S,
            priority="normal",
            issued_at=now,
            items=(item,),
            seq=daemon.dispatcher.next_adhoc_number(),
        ),
        key,
    )


def acks_ready(daemon: Daemon, hamlets: list[str]) -> int:
    """Ready acks counted so far, read off each hamlet's counter child: collecting the whole
    registry 20 times a second would charge the harness's polling to the daemon's CPU."""
    counter = daemon.metrics.playlist_acks_total
    total = 0
    for hamlet in hamlets:
        for metric in counter.labels(hamlet=hamlet, status="ready").collect():
            total += sum(int(s.value) for s in metric.samples if s.name.endswith("_total"))
    return total


async def wait_until(predicate: Callable[[], bool], limit_s: float, what: str) -> None:
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


async def system_run(
    daemon: Daemon, agents: int, clips: dict[str, Clip], limit_s: float, meter: CpuMeter
) -> float:
    hamlets = list(clips)
    await wait_until(
        lambda: sum(1 for v in daemon.registry.snapshot() if v.state == "online") >= agents,
        limit_s,
        "every agent online",
    )
    await settle(daemon.link.publish, f"bcast/v1/{daemon.config.commune.id}/bench-probe", limit_s)
    now = int(time.time())
    envs = {h: envelope(daemon, h, clips[h], now) for h in hamlets}
    for env in envs.values():
        await daemon.journal.record_dispatch(env)
    started = time.monotonic()
    meter.mark("system-start")
    # the Dispatcher's own publish step: retained audio chunks, then the signed playlists
    await daemon.dispatcher.publish(list(clips.values()), list(envs.values()), urgent=False)
    await wait_until(lambda: acks_ready(daemon, hamlets) >= agents, limit_s, "every ack ready")
    elapsed = time.monotonic() - started
    meter.mark("system-stop")
    return elapsed


BASELINE_PASSWORD = "baseline"  # noqa: S105 - a throwaway benchmark login


async def add_baseline_logins(daemon: Daemon, topic_root: str, count: int) -> None:
    """`baseline-publisher` and `baseline-0..count-1` on the daemon's broker, reading and writing
    under `topic_root` only; mosquitto re-reads its password file and ACL on SIGHUP."""
    broker = daemon.broker
    if broker is None or broker.pid is None:
        raise SystemExit("fanout: the daemon runs no embedded broker")
    digest = hash_password(BASELINE_PASSWORD)  # one salt for all: only the bench knows them
    users = ["baseline-publisher", *(f"baseline-{n}" for n in range(count))]
    with (broker.directory / "passwd").open("a", encoding="utf-8") as fh:
        fh.writelines(f"{user}:{digest}\n" for user in users)
    with (broker.directory / "acl").open("a", encoding="utf-8") as fh:
        fh.write(f"\npattern readwrite {topic_root}/#\n")
    os.kill(broker.pid, signal.SIGHUP)
    await asyncio.sleep(1.0)  # the reload happens in mosquitto's next loop pass


async def baseline_run(  # noqa: PLR0913 - the baseline's knobs, explicit
    *,
    host: str,
    port: int,
    password: str,
    clips: dict[str, Clip],
    workers: list[Worker],
    topic_root: str,
    limit_s: float,
    meter: CpuMeter,
) -> float:
    """Plain aiomqtt: publish the clips as retained chunks, the workers' subscribers fetch them."""
    hamlets = list(clips)
    data = {h: clips[h].path.read_bytes() for h in hamlets}
    await all_say(workers, "connected", limit_s)
    async with aiomqtt.Client(
        host,
        port,
        username="baseline-publisher",
        password=password,
        identifier="baseline-publisher",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as pub:

        async def probe(topic: str, payload: bytes) -> None:
            await pub.publish(topic, payload, qos=1)

        await settle(probe, f"{topic_root}/probe", limit_s)  # connected beforehand, like the daemon
        started = time.monotonic()
        meter.mark("baseline-start")
        for hamlet in hamlets:
            for index, chunk in enumerate(protocol.iter_chunks(data[hamlet])):
                await pub.publish(
                    f"{topic_root}/{hamlet}/{index}",
                    chunk,
                    qos=1,
                    retain=True,
                    properties=chunk_properties(),
                )
        for worker in workers:
            worker.send("go")
        await all_say(workers, "done", limit_s)
        elapsed = time.monotonic() - started
        meter.mark("baseline-stop")
        for hamlet in hamlets:  # leave no retained baseline bytes behind
            for index in range(protocol.chunk_count(len(data[hamlet]))):
                await pub.publish(f"{topic_root}/{hamlet}/{index}", b"", qos=1, retain=True)
    for worker in workers:
        worker.send("close")
    await all_say(workers, "closed", limit_s)
    return elapsed


async def bench(  # noqa: PLR0913 - one run's knobs, explicit
    nodes: int, hamlets: int, size: int, limit_s: float, k: int, *, fleet: Path, tls: bool
) -> tuple[float, float, float]:
    """One run with `k` worker processes, agents' caches in `fleet`: (system s, baseline s,
    summed peak RSS MB). `tls`: agents and baseline subscribers use the speakers' TLS listener."""
    per_hamlet = nodes // hamlets
    with tempfile.TemporaryDirectory(prefix="broadcastd-fanout-") as tmp:
        root = Path(tmp)
        config_path = write_config(root, hamlets, per_hamlet, tls=tls)
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
            host, _, port = daemon.config.broker.listen.rpartition(":")
            node_ids = [n.id for h in daemon.config.hamlets for n in h.nodes]
            ids = list(range(per_hamlet * hamlets))
            topic_root = f"bcast/v1/bench/baseline-{os.getpid()}"
            await add_baseline_logins(daemon, topic_root, len(ids))
            sub_host, sub_port, ca_file = host, int(port), None
            if tls:  # the subscribers, like the agents, on the speakers' listener
                tls_port = daemon.broker.tls_port if daemon.broker is not None else None
                if tls_port is None:
                    raise SystemExit("fanout: the daemon's broker has no TLS listener")
                sub_host, sub_port = "localhost", tls_port
                ca_file = str(pki.trust_anchor(daemon.config))
            common = {
                "sub_host": sub_host,
                "sub_port": sub_port,
                "ca_file": ca_file,
                "password": BASELINE_PASSWORD,
                "topic_root": topic_root,
                "sizes": {h: c.size for h, c in clips.items()},
                "config_path": str(config_path),
                "cache_root": str(fleet),
                "threads": max(1, SIM_THREADS // k),  # the same total pool, however split
            }
            # worker i gets every k-th baseline subscriber and agent: same share of each hamlet
            workers = [
                await Worker.start(common | {"baseline_ids": ids[i::k], "nodes": node_ids[i::k]})
                for i in range(k)
            ]
            pids = {"daemon": os.getpid()}
            if daemon.broker is not None and daemon.broker.pid is not None:
                pids["mosquitto"] = daemon.broker.pid
            pids |= {f"w{i}": w.proc.pid for i, w in enumerate(workers)}
            meter = CpuMeter(pids)
            try:
                baseline = await baseline_run(
                    host=host,
                    port=int(port),
                    password=BASELINE_PASSWORD,
                    clips=clips,
                    workers=workers,
                    topic_root=topic_root,
                    limit_s=limit_s,
                    meter=meter,
                )
                for worker in workers:
                    worker.send("fleet")
                await all_say(workers, "started", limit_s)
                system = await system_run(daemon, len(node_ids), clips, limit_s, meter)
                sys.stderr.write(
                    f"fanout K={k} cpu seconds on the clock: baseline "
                    f"{meter.between('baseline-start', 'baseline-stop')}; system "
                    f"{meter.between('system-start', 'system-stop')}\n"
                )
                for worker in workers:
                    worker.send("stop")
                reports = await asyncio.gather(*(w.hear(60) for w in workers))
                rss = sum(float(json.loads(r)["rss_mb"]) for r in reports)
                for worker in workers:
                    await asyncio.wait_for(worker.proc.wait(), 30)
            finally:
                for worker in workers:
                    if worker.proc.returncode is None:
                        worker.proc.kill()
                        await worker.proc.wait()
                daemon.request_stop()
            await daemon_task
    return system, baseline, rss


Results = dict[int, list[tuple[float, float, float]]]


def run_transport(args: argparse.Namespace, trees: FleetTrees, *, tls: bool) -> Results:
    """K=1 once (plain only, for comparison), then K=--workers --rounds times."""
    size = int(args.mb * 1024 * 1024)
    t0 = time.monotonic()
    results: Results = {}
    name = "tls" if tls else "plain"
    # one run's ratio moved by +-0.15 here with nothing changed (the baseline alone by up to
    # 30%), so the required line is the median of --rounds runs.
    for k in [1] * (args.workers != 1 and not tls) + [args.workers] * args.rounds:
        fleet = trees.new()
        run = bench(args.nodes, args.hamlets, size, args.timeout, k, fleet=fleet, tls=tls)
        system, baseline, workers_rss = asyncio.run(run)
        trees.release(fleet)
        # the parent holds only the daemon (ru_maxrss: its peak over every run so far)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + workers_rss
        results.setdefault(k, []).append((system, baseline, peak))
        sys.stderr.write(
            f"fanout {name} K={k}: {args.nodes} agents / {args.hamlets} hamlets / {size} B per "
            f"hamlet: system {system:.2f}s, baseline {baseline:.2f}s, ratio "
            f"{system / baseline:.2f}, peak rss {peak:.0f} MB, run so far "
            f"{time.monotonic() - t0:.0f}s ({dt.datetime.now(tz=dt.UTC):%Y-%m-%d %H:%M} UTC)\n"
        )
    return results


def report(args: argparse.Namespace, results: Results, *, tls: bool) -> None:
    over = " over TLS" if tls else ""
    if 1 in results and args.workers != 1:
        system, baseline, peak = results[1][0]
        print(
            f"# K=1 worker process (for comparison){over}: ratio {system / baseline:.2f} "
            f"(system {system:.2f} s / baseline {baseline:.2f} s), peak rss {peak:.0f} MB"
        )
    runs = results[args.workers]
    ratios = [system / baseline for system, baseline, _ in runs]
    print(
        f"# K={args.workers} worker processes{over}, {args.nodes // args.workers} agents and "
        f"{args.nodes // args.workers} baseline subscribers each, {len(runs)} runs: "
        + ", ".join(
            f"{r:.2f} ({s:.2f} s / {b:.2f} s)" for r, (s, b, _) in zip(ratios, runs, strict=True)
        )
    )
    print(f"fanout ready{over}: ratio={statistics.median(ratios):.2f} target={TARGET}")
    print(f"fanout peak rss{over}: {max(peak for _, _, peak in runs):.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--hamlets", type=int, default=10)
    parser.add_argument("--mb", type=float, default=1.0, help="audio per hamlet, MiB")
    parser.add_argument("--timeout", type=float, default=150.0)
    parser.add_argument("--rounds", type=int, default=3, help="runs with K workers; median ratio")
    parser.add_argument(
        "--workers", type=int, default=max(2, min(4, os.cpu_count() or 2)), help="K processes"
    )
    parser.add_argument(
        "--transport", choices=("plain", "tls", "both"), default="both", help="speakers' link"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.nodes + 1024))  # inherited by workers and mosquitto
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    trees = FleetTrees()
    try:
        for tls in [False] * (args.transport != "tls") + [True] * (args.transport != "plain"):
            report(args, run_transport(args, trees, tls=tls), tls=tls)
            sys.stdout.flush()
    finally:
        trees.remove()


if __name__ == "__main__":
    main()
