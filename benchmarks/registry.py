"""NodeRegistry at district scale: memory for 100k nodes and the cost of one sweep.

RSS is measured as the growth of the process's resident set while building the registry (the
interpreter and imports are not the registry's), after every node has been heard once so each one
carries its full state. The sweep is timed with the fleet online; in one of the sweeps a tenth of
it turns stale (journal callback off, metrics on).
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broadcastd.controller.registry import NodeRegistry
from broadcastd.metrics import Metrics

NODES = 100_000
HAMLETS = 500
HEARTBEAT_S = 30.0


def rss_mb() -> float:
    # Current RSS from /proc (ru_maxrss is the peak, which would hide a shrink but not growth).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def beat(ts: float) -> bytes:
    return json.dumps({"ts": ts, "uptime_s": 10, "rssi": -70, "volume": 80}).encode()


def main() -> None:
    clock = [1_800_000_000.0]
    metrics = Metrics()
    gc.collect()
    before = rss_mb()
    registry = NodeRegistry.from_nodes(
        ((f"node-{i:06d}", f"hamlet-{i % HAMLETS:03d}", 3) for i in range(NODES)),
        heartbeat_s=HEARTBEAT_S,
        now=lambda: clock[0],
        metrics=metrics,
    )
    for i in range(NODES):
        registry.on_heartbeat(f"node-{i:06d}", beat(clock[0]))
    gc.collect()
    used = rss_mb() - before

    sweeps: list[float] = []
    for round_ in range(10):
        clock[0] += 1
        if round_ == 5:  # a tenth of the fleet falls silent past 2 x heartbeat, the rest beats
            clock[0] += 2 * HEARTBEAT_S
            for i in range(NODES):
                if i % 10:
                    registry.on_heartbeat(f"node-{i:06d}", beat(clock[0]))
        start = time.perf_counter()
        registry.sweep()
        sweeps.append((time.perf_counter() - start) * 1000)
    print(f"registry rss: {used:.1f} MB target=200")
    # The worst sweep (the one that moves 10k nodes to stale), not a flattering median.
    print(f"registry sweep: {max(sweeps):.1f} ms target=50")


if __name__ == "__main__":
    main()
