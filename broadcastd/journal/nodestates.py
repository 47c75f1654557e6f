"""Each configured speaker as the journal last saw it: its latest reachability transition and its
latest ack. What `broadcastd nodes` prints and the console shows while the daemon is away."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broadcastd.config import Config
    from broadcastd.journal.queries import JournalReads
    from broadcastd.journal.schema import AckRow
    from broadcastd.models import Transition


@dataclass(frozen=True, slots=True)
class JournaledNode:
    node: str
    hamlet: str
    households: int
    transition: Transition | None  # None: the journal never saw the node
    ack: AckRow | None

    @property
    def state(self) -> str:
        return self.transition.to if self.transition else "unknown"

    @property
    def since(self) -> float | None:
        return self.transition.ts if self.transition else None

    def row(self) -> dict[str, Any]:
        """What every listing of speakers starts with; callers add their own columns."""
        return {
            "node": self.node,
            "hamlet": self.hamlet,
            "households": self.households,
            "state": self.state,
            "since": self.since,
        }


def journaled_nodes(
    config: Config, journal: JournalReads | None, hamlet: str | None = None
) -> list[JournaledNode]:
    """Every configured node (of `hamlet` only, if given) in config order; with no journal,
    every one unknown."""
    transitions = journal.latest_transitions() if journal is not None else {}
    acks = journal.last_acks() if journal is not None else {}
    return [
        JournaledNode(n.id, h.id, n.households, transitions.get(n.id), acks.get(n.id))
        for h in config.hamlets
        if hamlet is None or h.id == hamlet
        for n in h.nodes
    ]
