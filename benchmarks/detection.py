"""Detection: how soon a dead speaker shows `offline` in the daemon's registry, over keepalive.

System: the daemon (embedded mosquitto with its generated password file and ACL, journal,
registry) and real `broadcastd-node` processes (keepalive 5 s, the agent's floor; heartbeat 10 min,
so the registry's silence sweep can never be what marks a node offline: only its Last Will can).
Batches of agents are started, each is SIGKILLed once online, and the latency is the registry's
transition time (`since`, on the daemon's real clock) minus the moment of the kill.

A SIGKILL closes the socket, so mosquitto publishes the Last Will at once. A speaker that hangs
or loses its 3G link without a FIN is different: only the broker's keepalive check notices. The
`frozen` lines measure that with SIGSTOP; mosquitto 2.0 runs the check only when five whole
seconds have passed since the last one, so at a 5 s keepalive they land near 1.5-2.7 x keepalive
(at the production 30 s keepalive the same slack is under 0.2 x keepalive).

Prints `detection p50: ratio=<x>`, `detection p95: ratio=<x> target=1.6` (over `--kills` SIGKILLs)
and `detection frozen p50/p95: ratio=<x>` (over `--frozen` SIGSTOPs; 0 skips them).
Usage: `python benchmarks/detection.py [--kills 50] [--frozen 20] [--batch 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from _commune import write_commune

from broadcastd import protocol
from broadcastd.controller.daemon import Daemon
from broadcastd.transport.credentials import Credentials

TARGET = 1.6
KEEPALIVE_S = 5.0
PER_HAMLET = 10
BIN = Path(sys.executable).parent


def write_config(root: Path, nodes: int) -> Path:
    hamlets = (nodes + PER_HAMLET - 1) // PER_HAMLET
    return write_commune(
        root,
        hamlets=hamlets,
        per_hamlet=PER_HAMLET,
        prefix="d",
        heartbeat="600s",
        keepalive=f"{KEEPALIVE_S:.0f}s",
    )


def node_yaml(daemon: Daemon, root: Path, node: str, password: str) -> Path:
    config = daemon.config
    key = protocol.load_private_key(config.signing.private_key_file)
    doc = {
        "node": {"id": node, "hamlet": node.split("-", maxsplit=1)[0], "commune": "bench"},
        "broker": {"url": f"mqtt://{config.broker.listen}", "username": node, "password": password},
        "public_key": protocol.public_key_b64(key.public_key()),
        "cache_dir": str(root / "nodes" / node),
        "player": None,
        "heartbeat": "600s",
        "keepalive": f"{KEEPALIVE_S:.0f}s",
    }
    path = root / "nodes" / f"{node}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


async def wait_state(daemon: Daemon, nodes: list[str], state: str, limit: float) -> None:
    deadline = time.monotonic() + limit
    while any(daemon.registry.state(n) != state for n in nodes):
        if time.monotonic() > deadline:
            late = [n for n in nodes if daemon.registry.state(n) != state]
            raise SystemExit(f"detection: {late} not {state} after {limit:.0f}s")
        await asyncio.sleep(0.05)


async def batch(daemon: Daemon, root: Path, nodes: list[str], sig: signal.Signals) -> list[float]:
    """Start `nodes` as processes, send each `sig` once online; latency of each, in seconds."""
    creds = Credentials.load_or_create(daemon.config)
    procs = {
        n: subprocess.Popen(  # noqa: ASYNC220 - starting is instant; every wait below is awaited
            [BIN / "broadcastd-node", "-c", node_yaml(daemon, root, n, creds.password(n))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in nodes
    }
    try:
        await wait_state(daemon, nodes, "online", 60)
        await asyncio.sleep(1.0)  # past the connect burst: the links are idle, as in the field
        sent: dict[str, float] = {}
        for node, proc in procs.items():
            sent[node] = time.time()  # the daemon's clock: registry `since` is on it
            proc.send_signal(sig)
            await asyncio.sleep(0.05)  # kills spread a little, not one burst
        await wait_state(daemon, nodes, "offline", 4 * KEEPALIVE_S + 10)
    finally:
        for proc in procs.values():
            proc.kill()  # also ends a stopped process
        for proc in procs.values():
            await asyncio.to_thread(proc.wait, 10)
    since = {v.node: v.since for v in daemon.registry.snapshot()}
    return [since[n] - sent[n] for n in nodes]


async def measure(kills: int, frozen: int, size: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="bcast-detect-") as tmp:
        root = Path(tmp)
        daemon = Daemon(
            write_config(root, kills + frozen),
            engines=["espeak"],
            serve_metrics=False,
            watch_files=False,
            handle_signals=False,
            scheduling=False,
        )
        ids: list[str] = []
        killed: list[float] = []
        stopped: list[float] = []
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(daemon.run())
            await asyncio.wait_for(daemon.ready.wait(), 30)
            ids = [v.node for v in daemon.registry.snapshot()]
            for start in range(0, kills, size):
                killed += await batch(
                    daemon, root, ids[start : min(start + size, kills)], signal.SIGKILL
                )
            for start in range(kills, kills + frozen, size):
                chunk = ids[start : min(start + size, kills + frozen)]
                stopped += await batch(daemon, root, chunk, signal.SIGSTOP)
            daemon.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return killed, stopped


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--frozen", type=int, default=20)
    parser.add_argument("--batch", type=int, default=10, help="agents killed per round")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    started = time.monotonic()
    killed, stopped = asyncio.run(measure(args.kills, args.frozen, max(1, args.batch)))
    ratios = [latency / KEEPALIVE_S for latency in killed]
    print(f"detection p50: ratio={statistics.median(ratios):.3f}")
    print(f"detection p95: ratio={percentile(ratios, 95):.3f} target={TARGET}")
    if stopped:
        frozen = [latency / KEEPALIVE_S for latency in stopped]
        print(f"detection frozen p50: ratio={statistics.median(frozen):.3f}")
        print(f"detection frozen p95: ratio={percentile(frozen, 95):.3f}")
    print(
        f"# {len(killed)} SIGKILLs, {len(stopped)} SIGSTOPs, keepalive {KEEPALIVE_S:.0f}s, "
        f"max kill latency {max(killed):.3f}s, {time.monotonic() - started:.0f}s in all",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
