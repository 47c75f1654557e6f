"""What nodes answer: acks, checked against what was sent, into the journal and coverage metrics.

An ack is refused (counted, never journaled as a figure) unless it names a playlist or control
this controller sent to the acking node's own hamlet; rejections and expiries are kept as
evidence even for ids never dispatched. A `played` ack updates `households_reached`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, cast

from broadcastd import protocol
from broadcastd.controller.nodeguard import Refusals
from broadcastd.errors import ProtocolError
from broadcastd.models import Ack, AckStatus, metric_slot

if TYPE_CHECKING:
    from broadcastd.config import Config
    from broadcastd.controller.controls import Controls
    from broadcastd.controller.registry import NodeRegistry
    from broadcastd.controller.volume import VolumeRequests
    from broadcastd.journal.store import Journal
    from broadcastd.metrics import Metrics

# Statuses a node reports for an envelope it did not accept (a forgery, one delivered too late):
# kept as evidence even when the id is none this controller dispatched; they count for no figure.
EVIDENCE = frozenset({"rejected", "expired"})


class AckSink:
    """The ack handler of the node inbox. Holds no state the journal does not also have."""

    def __init__(  # noqa: PLR0913 - the collaborators, handed over by Operations
        self,
        config: Config,
        *,
        controls: Controls,
        journal: Journal,
        registry: NodeRegistry,
        volume: VolumeRequests,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.controls = controls
        self.journal = journal
        self.registry = registry
        self.volume = volume
        self.metrics = metrics
        # playlist id -> (hamlet, slot), and who played it, for households_reached
        self._playlists: dict[str, tuple[str, str]] = {}
        self._played: dict[str, set[str]] = defaultdict(set)
        self._refuse = Refusals(metrics)

    def replace_config(self, config: Config) -> None:
        self.config = config

    def sent(self, playlist: str, hamlet: str, slot: str) -> None:
        """Remember a playlist just dispatched, sparing its acks a journal look-up."""
        self._playlists[playlist] = (hamlet, slot)

    async def on_ack(self, node: str, payload: bytes) -> None:
        metrics = self.metrics
        hamlet = self.config.node_hamlets().get(node)
        if hamlet is None:
            metrics.bad_messages_total.labels(reason="unknown_node").inc()
            return
        try:
            parsed = protocol.parse_ack(payload)
        except ProtocolError as exc:
            self._refuse(node, exc.reason, exc.detail)
            return
        sent_to = self._sent_to(parsed.playlist)
        control = self.controls.hamlets_of(parsed.playlist)  # a control's ack names its id
        if sent_to is None and control is None and parsed.status not in EVIDENCE:
            self._refuse(node, "unknown_playlist", f"{parsed.status} {parsed.playlist}")
            return
        if (sent_to is not None and sent_to[0] != hamlet.id) or (
            control is not None and hamlet.id not in control
        ):
            # A node can only have received its own hamlet's playlists and controls (the ACL):
            # anything else is a forgery trying to move another hamlet's figures.
            self._refuse(node, "foreign_playlist", f"{parsed.status} {parsed.playlist}")
            return
        ack = Ack(
            node=node,
            playlist=parsed.playlist,
            status=cast("AckStatus", parsed.status),  # parse_ack admits only ACK_STATUSES
            ts=parsed.ts,
            detail=parsed.detail,
        )
        metrics.playlist_acks_total.labels(hamlet=hamlet.id, status=ack.status).inc()
        self.journal.record_ack(ack, hamlet.id)
        self.registry.on_ack(node, ack.playlist, ack.status)
        self.volume.on_ack(node, ack.playlist)
        if ack.status == "played":
            self._count_played(ack, hamlet.id)

    def _sent_to(self, playlist: str) -> tuple[str, str] | None:
        """(hamlet, slot) of a playlist this controller dispatched; None if it never did."""
        where = self._playlists.get(playlist)
        if where is None:
            row = self.journal.dispatch(playlist)
            if row is None:
                return None
            where = self._playlists[playlist] = (row.hamlet, row.slot)
        return where

    def _count_played(self, ack: Ack, hamlet_id: str) -> None:
        where = self._sent_to(ack.playlist)
        if where is None:
            return
        self._played[ack.playlist].add(ack.node)
        hamlet = self.config.hamlet(hamlet_id)
        households = {n.id: n.households for n in hamlet.nodes}
        reached = sum(households.get(n, 0) for n in self._played[ack.playlist])
        label = metric_slot(where[1])
        self.metrics.households_reached.labels(hamlet=where[0], slot=label).set(reached)
