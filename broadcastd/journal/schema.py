"""The journal's schema: its migrations and the rows its queries return (see store.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from broadcastd import protocol

# Migration N (index N-1) brings a journal from user_version N-1 to N. Append only; never edit one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE dispatches (
        id TEXT PRIMARY KEY, date TEXT NOT NULL, slot TEXT NOT NULL, hamlet TEXT NOT NULL,
        play_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, priority TEXT NOT NULL,
        status TEXT NOT NULL, seq INTEGER NOT NULL, items TEXT NOT NULL, envelope TEXT NOT NULL,
        created_at REAL NOT NULL, published_at REAL, cancelled_at REAL);
    CREATE INDEX dispatches_date ON dispatches(date, slot);
    CREATE INDEX dispatches_hamlet ON dispatches(hamlet, expires_at);
    CREATE TABLE acks (
        id INTEGER PRIMARY KEY, node TEXT NOT NULL, hamlet TEXT NOT NULL, playlist TEXT NOT NULL,
        status TEXT NOT NULL, ts INTEGER NOT NULL, detail TEXT NOT NULL, received_at REAL NOT NULL);
    CREATE INDEX acks_playlist ON acks(playlist);
    CREATE INDEX acks_node ON acks(node);
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY, node TEXT NOT NULL, hamlet TEXT NOT NULL, "from" TEXT NOT NULL,
        "to" TEXT NOT NULL, cause TEXT NOT NULL, ts REAL NOT NULL);
    CREATE INDEX transitions_node ON transitions(node, id);
    CREATE TABLE reloads (id INTEGER PRIMARY KEY, ts REAL NOT NULL, result TEXT NOT NULL,
        detail TEXT NOT NULL);
    CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL,
        detail TEXT NOT NULL);
    CREATE TABLE skips (id INTEGER PRIMARY KEY, date TEXT NOT NULL, slot TEXT NOT NULL,
        hamlet TEXT NOT NULL, reason TEXT NOT NULL, ts REAL NOT NULL);
    CREATE TABLE audit (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, key TEXT NOT NULL,
        op TEXT NOT NULL, content TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class DispatchRow:
    id: str
    date: str  # YYYY-MM-DD, the slot's date in the commune's zone
    slot: str
    hamlet: str
    play_at: int
    expires_at: int
    priority: str
    status: str  # live | exercise
    seq: int
    items: str  # JSON list, as in the envelope
    envelope: str  # the signed envelope, re-publishable byte for byte
    created_at: float
    published_at: float | None
    cancelled_at: float | None

    def signed(self) -> protocol.Signed[protocol.Playlist]:
        """The journaled envelope, typed again; ProtocolError if it is not a valid playlist."""
        return protocol.signed_playlist(self.envelope.encode())

    def item_list(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.items)
        return items


@dataclass(frozen=True, slots=True)
class AckRow:
    node: str
    hamlet: str
    playlist: str
    status: str
    ts: int
    detail: str
    received_at: float


@dataclass(frozen=True, slots=True)
class SkipRow:
    date: str
    slot: str
    hamlet: str
    reason: str
    ts: float


# The column order DispatchRow takes positionally.
DISPATCH_COLS = (
    "id, date, slot, hamlet, play_at, expires_at, priority, status, seq, items, envelope,"
    " created_at, published_at, cancelled_at"
)
