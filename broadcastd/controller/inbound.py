"""What nodes send the controller (state, heartbeat, ack), routed to the registry and the ack sink.

Anything else arriving under the nodes' topics is counted as a bad message, never trusted; a
configured node that sends more than its limits allow (nodeguard.py) is refused before anything
is parsed, journaled or logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broadcastd.controller.nodeguard import NodeLimits, Refusals
from broadcastd.protocol.payloads import ack_number
from broadcastd.protocol.topics import Topics

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.config import Config
    from broadcastd.controller.acks import AckSink
    from broadcastd.controller.receipts import Receipts
    from broadcastd.controller.registry import NodeRegistry
    from broadcastd.metrics import Metrics

NODE_MESSAGES = ("state", "heartbeat", "ack")


class NodeInbox:
    """The controller link's message handler for `bcast/v1/<commune>/node/<node>/<kind>`."""

    def __init__(  # noqa: PLR0913 - its collaborators, each injected
        self,
        config: Callable[[], Config],
        *,
        registry: NodeRegistry,
        acks: AckSink,
        metrics: Metrics,
        limits: NodeLimits | None = None,
        receipts: Receipts | None = None,
        key_acks: Callable[[str, bytes], bool] | None = None,
        on_online: Callable[[], None] | None = None,
        on_heartbeat: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self._config = config  # read at every message: a reload may rename the commune
        self._registry = registry
        self._acks = acks
        self._metrics = metrics
        self._limits = limits or NodeLimits()
        self._refuse = Refusals(metrics)
        self._receipts = receipts
        self._key_acks = key_acks  # True when it journaled an ack of the key rotation
        self._on_online = on_online  # a node (re)connected: it wants the time (TimeBeacon)
        self._on_heartbeat = on_heartbeat  # its telemetry (TelemetryBook)

    def parse(self, topic: str) -> tuple[str, str] | None:
        """(kind, node) for a node topic of this commune; None for anything else."""
        parsed = Topics(self._config().commune.id).parse(topic)
        if parsed is None or not parsed[0].startswith("node_"):
            return None
        return parsed[0].removeprefix("node_"), parsed[1]

    async def on_message(self, topic: str, payload: bytes, _props: Any) -> None:
        parsed = self.parse(topic)
        if parsed is None:
            self._metrics.bad_messages_total.labels(reason="unknown_topic").inc()
            return
        kind, node = parsed
        config = self._config()
        if node in config.node_hamlets():  # unknown ids are counted by the registry/ack sink
            heartbeat = config.nodes.heartbeat.total_seconds()
            if not self._limits.allow(node, "ack" if kind == "ack" else "status", heartbeat):
                self._refuse(node, "rate_limited", kind)
                return
        if kind == "state":
            if self._registry.on_state(node, payload) and self._on_online is not None:
                self._on_online()
        elif kind == "heartbeat":
            self._registry.on_heartbeat(node, payload)
            if self._on_heartbeat is not None:
                self._on_heartbeat(node, payload)
        else:
            await self._ack(node, payload)

    async def _ack(self, node: str, payload: bytes) -> None:
        """An ack, and its receipt when the node numbered it: a copy of one already handled
        (sent again until confirmed) is only confirmed again."""
        n = ack_number(payload)
        if n is None or self._receipts is None:
            await self._handle_ack(node, payload)
            return
        if not self._receipts.seen(node, n):
            await self._handle_ack(node, payload)
        self._receipts.confirm(node, n)

    async def _handle_ack(self, node: str, payload: bytes) -> None:
        if self._key_acks is not None and self._key_acks(node, payload):
            return
        await self._acks.on_ack(node, payload)
