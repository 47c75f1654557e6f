"""Speakers' telemetry (battery, mains power, temperature, signal) from their heartbeats: metrics
with bounded labels, the daemon's `nodes` read, and `state_dir/telemetry.json`
(journal/telemetry.py) for `broadcastd nodes` and the console while the daemon is stopped.

Only nodes in the config count (an unknown id never makes a series), only the fields
`node.hooks` defines are read, each within its range. The file holds the last reading of each
node; it is rewritten (atomically) at most every SAVE_EVERY_S, not on every heartbeat.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from broadcastd.errors import ProtocolError
from broadcastd.journal.telemetry import FILE_NAME, save_readings
from broadcastd.protocol.payloads import parse_telemetry

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from broadcastd.config import Config
    from broadcastd.metrics import Metrics

log = logging.getLogger(__name__)

SAVE_EVERY_S = 10.0


class TelemetryBook:
    """The last telemetry of every configured node."""

    def __init__(
        self, config: Callable[[], Config], metrics: Metrics, *, clock: Callable[[], float]
    ) -> None:
        self._config = config  # read at every heartbeat: a reload may add or move nodes
        self._metrics = metrics
        self._clock = clock
        self.readings: dict[str, dict[str, Any]] = {}
        self._saved_at = -SAVE_EVERY_S
        self._dirty = False

    @property
    def path(self) -> Path:
        return self._config().state_dir / FILE_NAME

    def on_heartbeat(self, node: str, payload: bytes) -> None:
        hamlet = self._hamlet_of(node)
        if hamlet is None:
            return  # the registry counts unknown nodes
        try:
            reading = parse_telemetry(payload)
        except ProtocolError:
            return  # the registry counts bad heartbeats
        if reading is None:
            return
        self.readings[node] = {"hamlet": hamlet, "ts": round(self._clock(), 1), **reading}
        self._export(node, hamlet, reading)
        self._dirty = True
        self.save()

    def _hamlet_of(self, node: str) -> str | None:
        for h in self._config().hamlets:
            if any(n.id == node for n in h.nodes):
                return h.id
        return None

    def _export(self, node: str, hamlet: str, reading: dict[str, Any]) -> None:
        m = self._metrics
        if m.per_node:
            for gauge, field in (
                (m.node_battery_percent, "battery_pct"),
                (m.node_temperature_celsius, "temperature_c"),
                (m.node_signal_dbm, "signal_dbm"),
            ):
                if field in reading:
                    gauge.labels(node=node, hamlet=hamlet).set(reading[field])
            if "mains" in reading:
                m.node_mains_power.labels(node=node, hamlet=hamlet).set(int(reading["mains"]))
        mine = [r for r in self.readings.values() if r["hamlet"] == hamlet]
        m.nodes_on_battery.labels(hamlet=hamlet).set(sum(r.get("mains") is False for r in mine))
        batteries = [float(r["battery_pct"]) for r in mine if "battery_pct" in r]
        if batteries:
            m.node_battery_min_percent.labels(hamlet=hamlet).set(min(batteries))

    def save(self, *, force: bool = False) -> None:
        """Write the readings to `state_dir/telemetry.json` if due (or `force`)."""
        now = self._clock()
        if not self._dirty or (not force and now - self._saved_at < SAVE_EVERY_S):
            return
        self._saved_at = now
        self._dirty = False
        path = self.path
        try:
            save_readings(path, self.readings)
        except OSError as exc:
            log.warning("cannot save %s: %s", path, exc)
