"""Versioned read requests on the control socket: what the web console asks the running daemon.

A read changes nothing. Each request may carry `"v": N`; the daemon answers in the newest version
it speaks that is not newer than N, and says which (`"v"` in the answer), so a console from a newer
release can tell an older daemon apart instead of misreading it. Version 1:

- `hamlets`: per hamlet, its name and households and how many of its speakers are in each state;
- `nodes`: per speaker, its reachability and its own telemetry (signal, volume, version, uptime),
  and `telemetry`: its last hardware reading (`ts`, `battery_pct`, `mains`, `temperature_c`,
  `signal_dbm`, each as far as it reports them), or null.

`status` (`broadcastd status` and the console's banner) also reports `v`, the reads it knows and
`tts`: per TTS engine, its render attempts by result since the daemon started (a first engine that
keeps failing means bulletins are spoken by the fallback voice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from broadcastd.controller.registry import STATES, NodeView
from broadcastd.journal.telemetry import public_reading

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from broadcastd.config import Config
    from broadcastd.controller.registry import NodeRegistry
    from broadcastd.metrics import Metrics

READ_VERSION: Final = 1
READS: Final = ("status", "hamlets", "nodes")


def hamlets_v1(config: Config, registry: NodeRegistry, now: float) -> dict[str, object]:
    counts: dict[str, dict[str, int]] = {h.id: dict.fromkeys(STATES, 0) for h in config.hamlets}
    live: dict[str, int] = dict.fromkeys(counts, 0)
    for view in registry.snapshot():
        states = counts.get(view.hamlet)
        if states is None:
            continue
        states[view.state] += 1
        if view.state == "online":
            live[view.hamlet] += view.households
    return {
        "v": 1,
        "now": now,
        "hamlets": [
            {
                "id": h.id,
                "name": h.name,
                "households": h.households,
                "languages": list(h.languages),
                "nodes_total": len(h.nodes),
                "nodes_online": counts[h.id]["online"],
                "nodes_stale": counts[h.id]["stale"],
                "nodes_offline": counts[h.id]["offline"],
                "nodes_unknown": counts[h.id]["unknown"],
                "households_live": live[h.id],
            }
            for h in config.hamlets
        ],
    }


def nodes_v1(
    registry: NodeRegistry, now: float, readings: Mapping[str, object]
) -> dict[str, object]:
    """`readings`: node -> its last telemetry (the daemon's TelemetryBook)."""
    return {
        "v": 1,
        "now": now,
        "nodes": [
            _node(view) | {"telemetry": public_reading(readings.get(view.node))}
            for view in registry.snapshot()
        ],
    }


def _node(view: NodeView) -> dict[str, object]:
    return {
        "node": view.node,
        "hamlet": view.hamlet,
        "households": view.households,
        "state": view.state,
        "since": view.since,
        "last_seen": view.last_seen,
        "skew": view.skew,
        "last_ack": view.last_ack,
        "flaps": view.flaps,
        "rssi": view.rssi,
        "volume": view.volume,
        "uptime_s": view.uptime_s,
        "version": view.version,
    }


def tts_counts(metrics: Metrics) -> dict[str, dict[str, int]]:
    """engine -> result -> render attempts, from the daemon's own counters."""
    counts: dict[str, dict[str, int]] = {}
    for family in metrics.tts_renders_total.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                engine, result = sample.labels["engine"], sample.labels["result"]
                counts.setdefault(engine, {})[result] = int(sample.value)
    return counts


def answer_read(
    what: str,
    config: Config,
    registry: NodeRegistry,
    clock: Callable[[], float],
    readings: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The answer to one read request other than `status` (whose fields Operations owns)."""
    if what == "hamlets":
        return hamlets_v1(config, registry, clock())
    return nodes_v1(registry, clock(), readings or {})
