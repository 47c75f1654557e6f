"""The live picture: the daemon's own view of hamlets and speakers, or, while the daemon does not
answer, the last states it journaled, clearly marked as such.

One `LiveState` serves the whole console: a page or a live stream that asks while the picture is
younger than `max_age` gets the same one, so ten open phones cost the daemon one poll a second.

Each speaker carries its last telemetry (battery, mains, temperature, signal: from the daemon, or
the readings it last saved) and, once a signing key has been rotated, whether it confirmed the
newest key (`key_rotation`, as `broadcastd nodes --json` says it; from the journal either way).

Pending two-person emergency requests are part of the picture: the daemon's status names the ids
still pending (expired and decided ones drop out), and the journal holds what each one says,
journaled by the daemon before it answered the request.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from broadcastd.errors import BroadcastdError, DaemonNotRunningError
from broadcastd.journal import nodestates
from broadcastd.journal.keyconfirm import key_confirmations, key_status
from broadcastd.journal.telemetry import load_readings, public_reading

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.config import Config
    from broadcastd.console.sources import DaemonSource, JournalSource
    from broadcastd.journal.history import History
    from broadcastd.journal.store import Journal

STATES = ("online", "stale", "offline", "unknown")
REQUEST_LOOKBACK = 200  # request events searched for the pending ids (newest first)


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
    requests: tuple[dict[str, Any], ...] = ()  # pending emergency requests, as `pending` reads
    rotation: dict[str, Any] | None = None  # the latest key rotation journaled, as `rotation_of`

    def request(self, request_id: str) -> dict[str, Any] | None:
        return next((r for r in self.requests if r["id"] == request_id), None)

    @property
    def rotating(self) -> bool:
        """A signing-key rotation is under way: its old key has not retired yet."""
        retire = self.rotation["retire_at"] if self.rotation is not None else None
        return retire is not None and self.taken_at < retire

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
            "requests": list(self.requests),
            "rotation": self.rotation,
        }

    def fingerprint(self) -> str:
        """What a viewer would see change: states and counts, not the clock."""
        return json.dumps(
            [
                self.daemon,
                self.connected,
                [
                    (
                        n["node"],
                        n["state"],
                        n.get("volume"),
                        n.get("rssi"),
                        n.get("key_rotation"),
                        # what the power cell shows, not when it was read (every heartbeat)
                        {k: v for k, v in (n.get("telemetry") or {}).items() if k != "ts"},
                    )
                    for n in self.nodes
                ],
                [(h["id"], h["nodes_online"], h["nodes_total"]) for h in self.hamlets],
                [r["id"] for r in self.requests],
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


def pending(config: Config, history: History, ids: set[str]) -> dict[str, dict[str, Any]]:
    """id -> what the journal says of each pending request in `ids`: who asked, the text (at
    most the 200 characters the daemon journals), the hamlets, and when it expires."""
    names = {h.id: h.name for h in config.hamlets}
    households = {h.id: h.households for h in config.hamlets}
    ttl = config.emergency.request_ttl.total_seconds()
    found: dict[str, dict[str, Any]] = {}
    for event in history.events(limit=REQUEST_LOOKBACK, kind="request"):
        try:
            detail = json.loads(event.detail)
        except ValueError:
            continue
        rid = detail.get("id") if isinstance(detail, dict) else None
        if rid not in ids or rid in found:
            continue
        hamlets = [str(h) for h in detail.get("hamlets") or () if isinstance(h, str)]
        found[str(rid)] = {
            "id": rid,
            "operator": str(detail.get("operator") or ""),
            "via": detail.get("via"),
            "text": str(detail.get("text") or ""),
            "hamlets": hamlets,
            "hamlet_names": [names.get(h, h) for h in hamlets],
            "households": sum(households.get(h, 0) for h in hamlets),
            "requested_at": event.ts,
            "expires_at": event.ts + ttl,
        }
    return found


def rotation_of(rotation: dict[str, object] | None) -> dict[str, Any] | None:
    """The latest rotation's id, fingerprints and times, each only if it has the right type (the
    journal's event is shown, and alerts compute with its times)."""
    if rotation is None:
        return None

    def text(name: str) -> str:
        value = rotation.get(name)
        return value if isinstance(value, str) else ""

    def when(name: str) -> float | None:
        value = rotation.get(name)
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    return {
        "id": text("id"),
        "new_key": text("new_key"),
        "old_key": text("old_key"),
        "activate_at": when("activate_at"),
        "retire_at": when("retire_at"),
    }


SpeakersAndRotation = tuple[tuple[dict[str, Any], ...], dict[str, Any] | None]


def speaker_rows(nodes: tuple[dict[str, Any], ...], journal: Journal | None) -> SpeakersAndRotation:
    """The speakers as pages show them, and the latest rotation: each of `nodes` with its
    `key_rotation` (None before any rotation) and its `telemetry` checked (None from a daemon too
    old to send it)."""
    rotation, said = key_confirmations(journal) if journal is not None else (None, {})
    marked = tuple(
        n
        | {
            "telemetry": public_reading(n.get("telemetry")),
            "key_rotation": key_status(rotation, said, str(n["node"])),
        }
        for n in nodes
    )
    return marked, rotation_of(rotation)


def journaled_nodes(
    config: Config, journal: Journal | None, readings: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each configured speaker's last journaled state (what `broadcastd nodes` shows) in the
    shape of the daemon's live rows, with the telemetry the daemon last saved (`readings`);
    every speaker `unknown` while there is no journal."""
    return [
        n.row()
        | {
            "last_seen": None,
            "skew": None,
            "last_ack": f"{n.ack.playlist} {n.ack.status}" if n.ack else None,
            "flaps": 0,
            "rssi": None,
            "volume": None,
            "uptime_s": None,
            "version": None,
            "telemetry": readings.get(n.node),  # checked by speaker_rows
        }
        for n in nodestates.journaled_nodes(config, journal)
    ]


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
        self._requests: dict[str, dict[str, Any]] = {}  # pending ids already read from the journal
        self._stale = False

    def refresh(self) -> None:
        """Poll the daemon on the next `current()`: an action has just changed what it knows."""
        self._stale = True

    async def current(self) -> Live:
        async with self._lock:
            latest = self._latest
            if latest is None or self._stale or self.clock() - latest.taken_at >= self.max_age:
                self._stale = False
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
        answered = tuple(nodes.get("nodes", ()))
        keyed, rotation = await self.journal.read(
            lambda journal, _: speaker_rows(answered, journal), speaker_rows(answered, None)
        )
        return Live(
            daemon=True,
            reason="",
            connected=bool(status.get("connected")),
            hamlets=tuple(hamlets.get("hamlets", ())),
            nodes=keyed,
            rotation=rotation,
            taken_at=now,
            pending_requests=(ids := tuple(str(r) for r in status.get("pending_requests", ()))),
            tts=status.get("tts") or {},
            requests=await self._pending(ids),
        )

    async def _pending(self, ids: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
        missing = {i for i in ids if i not in self._requests}
        if missing:
            nothing: dict[str, dict[str, Any]] = {}
            self._requests |= await self.journal.read(
                lambda _, history: pending(self.config, history, missing), nothing
            )
        self._requests = {i: r for i, r in self._requests.items() if i in ids}
        return tuple(self._requests[i] for i in ids if i in self._requests)

    async def _journaled(self, now: float, reason: str) -> Live:
        """The last states the daemon journaled, for when it does not answer (the reason says
        which; the socket's path and errors stay out of pages and the API)."""
        state_dir = self.config.state_dir

        def read(
            journal: Journal | None, readings: dict[str, dict[str, Any]]
        ) -> SpeakersAndRotation:
            return speaker_rows(tuple(journaled_nodes(self.config, journal, readings)), journal)

        keyed, rotation = await self.journal.read(
            lambda journal, _: read(journal, load_readings(state_dir)), read(None, {})
        )
        return Live(
            daemon=False,
            reason=reason,
            connected=False,
            hamlets=tuple(hamlets_from(self.config, list(keyed))),
            nodes=keyed,
            rotation=rotation,
            taken_at=now,
        )
