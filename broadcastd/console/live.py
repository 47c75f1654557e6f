"""The live picture: the daemon's own view of hamlets and speakers, or, while the daemon does not
answer, the last states it journaled, clearly marked as such.

One `LiveState` serves the whole console: a page or a live stream that asks while the picture is
younger than `max_age` gets the same one, so ten open phones cost the daemon one poll a second.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from broadcastd.errors import BroadcastdError, DaemonNotRunningError

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.config import Config
    from broadcastd.console.sources import DaemonSource, JournalSource
    from broadcastd.journal.store import Journal

STATES = ("online", "stale", "offline", "unknown")


@dataclass(frozen=True, slots=True)
class Live:
    daemon: bool  # the daemon answered
    reason: str  # why not, when it did not
    connected: bool  # the daemon's MQTT link is up
    hamlets: tuple[dict[str, Any], ...]
    nodes: tuple[dict[str, Any], ...]
    taken_at: float
    pending_requests: tuple[str, ...] = ()
    tts: dict[str, dict[str, int]] = field(default_factory=dict)  # engine -> result -> count
    seq: int = field(default=0, compare=False)

    def node(self, node_id: str) -> dict[str, Any] | None:
        return next((n for n in self.nodes if n["node"] == node_id), None)

    def hamlet(self, hamlet_id: str) -> dict[str, Any] | None:
        return next((h for h in self.hamlets if h["id"] == hamlet_id), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "daemon": {"running": self.daemon, "reason": self.reason, "connected": self.connected},
            "taken_at": self.taken_at,
            "hamlets": list(self.hamlets),
            "nodes": list(self.nodes),
        }

    def fingerprint(self) -> str:
        """What a viewer would see change: states and counts, not the clock."""
        return json.dumps(
            [
                self.daemon,
                self.connected,
                [(n["node"], n["state"], n.get("volume"), n.get("rssi")) for n in self.nodes],
                [(h["id"], h["nodes_online"], h["nodes_total"]) for h in self.hamlets],
            ]
        )


def hamlets_from(config: Config, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The daemon's `hamlets` answer, rebuilt from node states (for journaled states)."""
    counts = {h.id: dict.fromkeys(STATES, 0) for h in config.hamlets}
    live = dict.fromkeys(counts, 0)
    for n in nodes:
        if n["hamlet"] in counts:
            counts[n["hamlet"]][n["state"] if n["state"] in STATES else "unknown"] += 1
            if n["state"] == "online":
                live[n["hamlet"]] += int(n["households"])
    return [
        {
            "id": h.id,
            "name": h.name,
            "households": h.households,
            "languages": list(h.languages),
            "nodes_total": len(h.nodes),
            **{f"nodes_{s}": counts[h.id][s] for s in STATES},
            "households_live": live[h.id],
        }
        for h in config.hamlets
    ]


def journaled_nodes(config: Config, journal: Journal | None) -> list[dict[str, Any]]:
    """Each configured speaker's last journaled state (what `broadcastd nodes` shows); every
    speaker `unknown` while there is no journal."""
    transitions = journal.latest_transitions() if journal is not None else {}
    acks = journal.last_acks() if journal is not None else {}
    rows: list[dict[str, Any]] = []
    for h in config.hamlets:
        for n in h.nodes:
            t = transitions.get(n.id)
            ack = acks.get(n.id)
            rows.append(
                {
                    "node": n.id,
                    "hamlet": h.id,
                    "households": n.households,
                    "state": t.to if t else "unknown",
                    "since": t.ts if t else None,
                    "last_seen": None,
                    "skew": None,
                    "last_ack": f"{ack.playlist} {ack.status}" if ack else None,
                    "flaps": 0,
                    "rssi": None,
                    "volume": None,
                    "uptime_s": None,
                    "version": None,
                }
            )
    return rows


class LiveState:
    def __init__(
        self,
        config: Config,
        daemon: DaemonSource,
        journal: JournalSource,
        *,
        clock: Callable[[], float],
        max_age: float = 1.0,
    ) -> None:
        self.config = config
        self.daemon = daemon
        self.journal = journal
        self.clock = clock
        self.max_age = max_age
        self._lock = asyncio.Lock()
        self._latest: Live | None = None
        self._seq = 0

    async def current(self) -> Live:
        async with self._lock:
            latest = self._latest
            if latest is None or self.clock() - latest.taken_at >= self.max_age:
                latest = await self._poll()
                if self._latest is None or latest.fingerprint() != self._latest.fingerprint():
                    self._seq += 1
                latest = replace(latest, seq=self._seq)
                self._latest = latest
            return latest

    async def _poll(self) -> Live:
        now = self.clock()
        try:
            status = await self.daemon.ask("status")
            hamlets = await self.daemon.ask("hamlets")
            nodes = await self.daemon.ask("nodes")
        except DaemonNotRunningError:
            return await self._journaled(now, "not running")
        except BroadcastdError:
            return await self._journaled(now, "not answering")
        return Live(
            daemon=True,
            reason="",
            connected=bool(status.get("connected")),
            hamlets=tuple(hamlets.get("hamlets", ())),
            nodes=tuple(nodes.get("nodes", ())),
            taken_at=now,
            pending_requests=tuple(str(r) for r in status.get("pending_requests", ())),
            tts=status.get("tts") or {},
        )

    async def _journaled(self, now: float, reason: str) -> Live:
        """The last states the daemon journaled, for when it does not answer (the reason says
        which; the socket's path and errors stay out of pages and the API)."""
        rows = await self.journal.read(
            lambda journal, _: journaled_nodes(self.config, journal),
            journaled_nodes(self.config, None),
        )
        return Live(
            daemon=False,
            reason=reason,
            connected=False,
            hamlets=tuple(hamlets_from(self.config, rows)),
            nodes=tuple(rows),
            taken_at=now,
        )
