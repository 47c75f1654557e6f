"""A worker process of benchmarks/fanout.py: a share of the baseline subscribers, then agents.

Real speakers are independent boards; 1000 agents in one event loop measure that loop instead.
The parent starts K of these and gives each the same share of both sides: first its plain aiomqtt
baseline subscribers, then its `Fleet` of reference agents. It talks over stdin/stdout, one line
per step, so the parent starts each clock only once every worker is connected:

    stdin line 1: the job (JSON)      -> "connected"  (baseline subscribers connected, to
                                                      `sub_host:sub_port`, over TLS with `ca_file`)
    "go"  (chunks are retained now)   -> "done"       (every local subscriber has its whole clip)
    "close"                           -> "closed"     (baseline clients disconnected)
    "fleet"                           -> "started"    (every agent connected and subscribed)
    "stop"                            -> {"rss_mb": peak resident set of this process}
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import resource
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomqtt

from broadcastd.config import load_config
from broadcastd.sim.fleet import Fleet
from broadcastd.transport.linksettings import tls_context

CONNECT_CONCURRENCY = 50
DEFAULT_GC_THRESHOLD = gc.get_threshold()


def freeze_heap() -> None:
    """Once this side's clients are connected, before its clock: the same for both sides.

    A real speaker's agent lives in a small heap of its own; 500 of them in one process make a
    full collection walk ~400,000 objects (0.15-0.25 s each, several per run), a cost no board
    pays. Everything alive now is moved out of the collector's sight (`gc.freeze`) and full
    collections are put off; young objects are still collected as usual."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*DEFAULT_GC_THRESHOLD[:2], 10_000)


def thaw_heap() -> None:
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_GC_THRESHOLD)
    gc.collect()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def hear(expected: str) -> None:
    line = (await asyncio.to_thread(sys.stdin.readline)).strip()
    if line != expected:
        raise SystemExit(f"fanout worker: expected {expected!r}, got {line!r}")


async def baseline(job: dict[str, Any]) -> None:
    """Connect this worker's subscribers, fetch on "go", report "done", disconnect on "close"."""
    sizes: dict[str, int] = job["sizes"]
    hamlets = list(sizes)
    ids: list[int] = job["baseline_ids"]
    received = dict.fromkeys(ids, 0)
    all_connected, go, done, close = (asyncio.Event() for _ in range(4))
    finished = connected = 0
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    # Over TLS, the subscribers verify the broker as the agents do (the commune CA, the host name).
    context = tls_context(Path(job["ca_file"])) if job["ca_file"] else None

    async def subscriber(n: int) -> None:
        nonlocal finished, connected
        hamlet = hamlets[n % len(hamlets)]
        async with sem:
            client = aiomqtt.Client(
                job["sub_host"],
                job["sub_port"],
                username=f"baseline-{n}",  # its own login: the broker ties ids to logins
                password=job["password"],
                identifier=f"baseline-{n}",
                protocol=aiomqtt.ProtocolVersion.V5,
                max_queued_incoming_messages=0,
                tls_context=context,
            )
            await client.__aenter__()
        try:
            connected += 1
            if connected == len(ids):
                all_connected.set()
            await go.wait()
            await client.subscribe(f"{job['topic_root']}/{hamlet}/+", qos=1)
            async for message in client.messages:
                received[n] += len(message.payload)
                if received[n] >= sizes[hamlet]:
                    finished += 1
                    if finished == len(received):
                        done.set()
                    break
            await close.wait()  # stay connected until every worker is done, as before
        finally:
            await client.__aexit__(None, None, None)

    tasks = [asyncio.create_task(subscriber(n)) for n in ids]
    await all_connected.wait()
    freeze_heap()
    say("connected")
    await hear("go")
    go.set()
    await done.wait()
    say("done")
    await hear("close")
    close.set()
    await asyncio.gather(*tasks)
    thaw_heap()
    say("closed")


async def agents(job: dict[str, Any]) -> None:
    await hear("fleet")
    config = load_config(job["config_path"], probe_media=False).config
    fleet = Fleet.for_config(
        config, cache_root=Path(job["cache_root"]), nodes=job["nodes"], heartbeat_s=60.0
    )
    task = asyncio.create_task(fleet.run(), name="fleet")
    while not all(a.agent and a.agent.link.connected.is_set() for a in fleet.agents.values()):
        if task.done():
            await task  # a fleet that ended early says why
        await asyncio.sleep(0.05)
    freeze_heap()
    say("started")
    await hear("stop")
    fleet.stop()
    await asyncio.wait_for(task, 30)


async def main() -> None:
    job = json.loads(await asyncio.to_thread(sys.stdin.readline))
    # each board fsyncs on its own; see SIM_THREADS in fanout.py for why agents get a pool
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=job["threads"]))
    await baseline(job)
    await agents(job)
    say(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # stderr: stdout is the parent's pipe
    asyncio.run(main())
