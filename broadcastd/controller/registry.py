"""Node reachability (DESIGN.md §6): a pure state machine over an injected clock.

`unknown -> online -> stale -> offline`. A state or heartbeat message makes a node `online`; silence
for 2 x heartbeat makes it `stale`, 3 x `offline`; an `offline` state message (the node's Last Will)
makes it `offline` at once. No I/O, no tasks: the daemon feeds messages and calls `sweep()`.

Two guards keep the picture honest on flaky 3G links:
- ordering: a state message whose `ts` is older than the last accepted one is ignored, so the Last
  Will of a dead session delivered after the new session's `online` does not mark the node offline;
- hysteresis: a node that flapped (FLAP_LIMIT online<->offline changes within FLAP_WINDOW_S) comes
  back as `stale` ("probation") and is promoted to `online` only by a message heard at least one
  heartbeat later, so dashboards and alerts do not oscillate with it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from broadcastd.controller.nodeguard import Refusals
from broadcastd.errors import ProtocolError
from broadcastd.models import Transition
from broadcastd.protocol.payloads import parse_heartbeat, parse_state

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from prometheus_client import Counter

    from broadcastd.config import Config
    from broadcastd.metrics import Metrics

log = logging.getLogger(__name__)
M = TypeVar("M")  # a parsed node message

UNKNOWN: Final = "unknown"
ONLINE: Final = "online"
STALE: Final = "stale"
OFFLINE: Final = "offline"
STATES: Final = (UNKNOWN, ONLINE, STALE, OFFLINE)

FLAP_WINDOW_S = 900.0
FLAP_LIMIT = 4  # two full drop-and-return cycles within the window


@dataclass(frozen=True, slots=True)
class NodeView:
    node: str
    hamlet: str
    state: str
    since: float
    last_seen: float | None
    skew: float | None  # node clock - daemon clock, seconds (positive: node clock ahead)
    last_ack: str | None  # "<playlist> <status>"
    flaps: int  # online<->offline changes in the current flap window
    households: int
    # the node's own telemetry, as last reported (None until it says)
    rssi: float | None = None
    volume: int | None = None  # the level its last heartbeat reported
    uptime_s: float | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class HamletSummary:
    hamlet: str
    up: int  # nodes online
    total: int
    households_live: int  # households of online nodes
    households: int  # the hamlet's households (config)


@dataclass(slots=True)
class _Node:
    hamlet: str
    households: int
    state: str
    since: float
    last_seen: float | None = None
    state_ts: float = -1.0
    skew: float | None = None
    volume: int | None = None
    last_ack: str | None = None
    flaps: int = 0
    flap_start: float = 0.0
    probation_from: float | None = None  # set while a flapping node earns `online` back
    rssi: float | None = None
    uptime_s: float | None = None
    version: str | None = None


NodeSpec = tuple[str, str, int]  # (node id, hamlet id, households)


class NodeRegistry:
    """Every configured node's reachability. Never raises on input; bad input is counted."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics | None,
        *,
        now: Callable[[], float],
        journal_cb: Callable[[Transition], None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._now = now
        self._journal_cb = journal_cb
        self._nodes: dict[str, _Node] = {}
        self._hamlet_households: dict[str, int] = {}
        self._bad = Refusals(metrics, verb="ignored")
        self._counts: dict[tuple[str, str], int] = {}
        self._dirty: set[str] = set()
        self._transition_counters: dict[tuple[str, str], Counter] = {}
        self._configure(*_specs(config))

    @classmethod
    def from_nodes(  # noqa: PLR0913 - the benchmark and tests build fleets without a YAML config
        cls,
        nodes: Iterable[NodeSpec],
        *,
        heartbeat_s: float,
        now: Callable[[], float],
        metrics: Metrics | None = None,
        per_node: bool = False,
        journal_cb: Callable[[Transition], None] | None = None,
    ) -> NodeRegistry:
        self = cls.__new__(cls)
        self._metrics, self._now, self._journal_cb = metrics, now, journal_cb
        self._nodes, self._hamlet_households = {}, {}
        self._bad = Refusals(metrics, verb="ignored")
        self._counts, self._dirty, self._transition_counters = {}, set(), {}
        specs = list(nodes)
        households: dict[str, int] = {}
        for _, hamlet, hh in specs:
            households[hamlet] = households.get(hamlet, 0) + hh
        self._configure(specs, households, heartbeat_s, per_node)
        return self

    def _configure(
        self,
        specs: list[NodeSpec],
        households: dict[str, int],
        heartbeat_s: float,
        per_node: bool,  # noqa: FBT001 - positional, fed from _specs()
    ) -> None:
        t = self._now()
        self._heartbeat = heartbeat_s
        self._per_node = per_node
        old, self._nodes = self._nodes, {}
        for node_id, hamlet_id, hh in specs:
            hamlet = sys.intern(hamlet_id)  # 100k nodes share a few hamlet strings
            kept = old.pop(node_id, None)
            if kept is not None:
                kept.hamlet, kept.households = hamlet, hh
                self._nodes[node_id] = kept
            else:
                self._nodes[sys.intern(node_id)] = _Node(hamlet, hh, UNKNOWN, t)
        removed_hamlets = set(self._hamlet_households) - set(households)
        self._drop_series(old, removed_hamlets)
        self._hamlet_households = households
        self._counts = {(h, s): 0 for h in households for s in STATES}
        for node in self._nodes.values():
            key = (node.hamlet, node.state)
            self._counts[key] = self._counts.get(key, 0) + 1
        self._dirty = set(households)
        self._publish_gauges()
        if per_node:
            for node_id, node in self._nodes.items():
                self._set_up(node_id, node)

    def replace_config(self, config: Config) -> None:
        """Adopt a reloaded config; nodes that still exist keep their state."""
        self._configure(*_specs(config))

    # -- inputs ------------------------------------------------------------------------------------

    def on_state(self, node_id: str, payload: bytes) -> bool:
        """Whether it was a node's `online`, accepted."""
        parsed = self._parsed(node_id, payload, parse_state)
        if parsed is None:
            return False
        node, msg = parsed
        if msg.ts < node.state_ts:
            self._bad(node_id, "out_of_order")  # e.g. an old session's Last Will, delivered late
            return False
        node.state_ts = msg.ts
        if msg.version is not None:
            node.version = msg.version
        t = self._now()
        if msg.state == OFFLINE:
            self._move(node_id, node, OFFLINE, "offline message (last will or shutdown)", t)
        else:
            self._heard(node_id, node, "state online", t)
        self._publish_gauges()
        return msg.state != OFFLINE

    def on_heartbeat(self, node_id: str, payload: bytes) -> None:
        parsed = self._parsed(node_id, payload, parse_heartbeat)
        if parsed is None:
            return
        node, beat = parsed
        t = self._now()
        # The node's own estimate from the time beacons, when it sends one: the offset it plays
        # by, free of the heartbeat's delay and of `ts`'s whole seconds.
        skew = -beat.clock_offset if beat.clock_offset is not None else beat.ts - t
        node.skew = round(skew, 3)
        node.rssi, node.uptime_s = beat.rssi, beat.uptime_s
        if beat.volume is not None:
            node.volume = round(beat.volume)
        if self._metrics is not None:
            self._metrics.node_clock_skew_seconds.observe(abs(node.skew))
        self._heard(node_id, node, "heartbeat", t)
        self._publish_gauges()

    def on_ack(self, node_id: str, playlist: str, status: str) -> None:
        """Remember a node's latest ack (shown in snapshots); an ack is also a sign of life."""
        node = self._nodes.get(node_id)
        if node is None:
            return  # AckSink.on_ack already counted the unknown node
        node.last_ack = f"{playlist[:80]} {status}"
        self._heard(node_id, node, "ack", self._now())
        self._publish_gauges()

    def sweep(self) -> None:
        """Age silent nodes: stale at 2 x heartbeat, offline at 3 x (from start for never-heard)."""
        t = self._now()
        stale_at, offline_at = 2 * self._heartbeat, 3 * self._heartbeat
        for node_id, node in self._nodes.items():
            state = node.state
            if state == OFFLINE:
                continue
            heard = node.last_seen if node.last_seen is not None else node.since
            age = t - heard
            if age >= offline_at:
                silence = f"silent {age:.0f}s" if node.last_seen is not None else "never heard"
                self._move(node_id, node, OFFLINE, silence, t)
            elif age >= stale_at and state == ONLINE:
                self._move(node_id, node, STALE, f"silent {age:.0f}s", t)
        self._publish_gauges()

    # -- outputs -----------------------------------------------------------------------------------

    def state(self, node_id: str) -> str:
        return self._nodes[node_id].state

    def snapshot(self) -> list[NodeView]:
        return [
            NodeView(
                node=node_id,
                hamlet=n.hamlet,
                state=n.state,
                since=n.since,
                last_seen=n.last_seen,
                skew=n.skew,
                last_ack=n.last_ack,
                flaps=n.flaps,
                households=n.households,
                rssi=n.rssi,
                volume=n.volume,
                uptime_s=n.uptime_s,
                version=n.version,
            )
            for node_id, n in self._nodes.items()
        ]

    def hamlet_summary(self) -> list[HamletSummary]:
        up: dict[str, int] = dict.fromkeys(self._hamlet_households, 0)
        total = dict(up)
        live = dict(up)
        for n in self._nodes.values():
            total[n.hamlet] += 1
            if n.state == ONLINE:
                up[n.hamlet] += 1
                live[n.hamlet] += n.households
        return [
            HamletSummary(h, up[h], total[h], live[h], hh)
            for h, hh in self._hamlet_households.items()
        ]

    # -- internals ---------------------------------------------------------------------------------

    def _parsed(
        self, node_id: str, payload: bytes, parse: Callable[[bytes], M]
    ) -> tuple[_Node, M] | None:
        """The configured node and its message; None (counted as bad) for an unknown node or a
        payload `parse` refuses."""
        node = self._known(node_id)
        if node is None:
            return None
        try:
            return node, parse(payload)
        except ProtocolError as exc:
            self._bad(node_id, exc.reason)
            return None

    def _known(self, node_id: str) -> _Node | None:
        node = self._nodes.get(node_id)
        if node is None:
            self._bad(node_id, "unknown_node")
        return node

    def _heard(self, node_id: str, node: _Node, cause: str, t: float) -> None:
        node.last_seen = t
        if node.state == ONLINE:
            return
        if node.probation_from is not None and node.state == STALE:
            if t - node.probation_from >= self._heartbeat:
                node.probation_from = None
                self._move(node_id, node, ONLINE, f"{cause} (stable again)", t)
            return
        if node.state == OFFLINE and self._flapping(node, t):
            node.probation_from = t
            self._move(node_id, node, STALE, f"{cause} (flapping: on probation)", t)
            return
        self._move(node_id, node, ONLINE, cause, t)

    def _flapping(self, node: _Node, t: float) -> bool:
        return node.flaps + 1 >= FLAP_LIMIT and t - node.flap_start < FLAP_WINDOW_S

    def _move(self, node_id: str, node: _Node, to: str, cause: str, t: float) -> None:
        before = node.state
        if before == to:
            return
        if OFFLINE in (before, to) and UNKNOWN not in (before, to):
            if t - node.flap_start >= FLAP_WINDOW_S:
                node.flaps, node.flap_start = 0, t
            node.flaps += 1
        if to == OFFLINE:
            node.probation_from = None
        node.state, node.since = to, t
        self._counts[(node.hamlet, before)] -= 1
        self._counts[(node.hamlet, to)] += 1
        self._dirty.add(node.hamlet)
        if self._metrics is not None:
            child = self._transition_counters.get((node.hamlet, to))
            if child is None:  # labels() costs a lock and a lookup: a mass sweep pays it once
                child = self._metrics.node_transitions_total.labels(hamlet=node.hamlet, to=to)
                self._transition_counters[(node.hamlet, to)] = child
            child.inc()
            if self._per_node:
                self._set_up(node_id, node)
        if self._journal_cb is not None:
            self._journal_cb(Transition(node_id, node.hamlet, before, to, cause, t))

    def _publish_gauges(self) -> None:
        """Set `nodes{hamlet,state}` for the hamlets whose counts changed since last time."""
        dirty, self._dirty = self._dirty, set()
        if self._metrics is None:
            return
        for hamlet in dirty:
            for state in STATES:
                count = self._counts.get((hamlet, state), 0)
                self._metrics.nodes.labels(hamlet=hamlet, state=state).set(count)

    def _set_up(self, node_id: str, node: _Node) -> None:
        if self._metrics is not None:
            gauge = self._metrics.node_up.labels(node=node_id, hamlet=node.hamlet)
            gauge.set(1 if node.state == ONLINE else 0)

    def _drop_series(self, gone: dict[str, _Node], hamlets: set[str]) -> None:
        """Nodes and hamlets gone from the config must not linger as series."""
        if self._metrics is None:
            return
        if not self._per_node:
            self._metrics.node_up.clear()
        for node_id, node in gone.items():
            with contextlib.suppress(KeyError):  # never set
                self._metrics.node_up.remove(node_id, node.hamlet)
        for hamlet in hamlets:
            for state in STATES:
                with contextlib.suppress(KeyError):
                    self._metrics.nodes.remove(hamlet, state)


def _specs(config: Config) -> tuple[list[NodeSpec], dict[str, int], float, bool]:
    specs = [(n.id, h.id, n.households) for h in config.hamlets for n in h.nodes]
    households = {h.id: h.households for h in config.hamlets}
    heartbeat = config.nodes.heartbeat.total_seconds()
    return specs, households, heartbeat, config.metrics.per_node
