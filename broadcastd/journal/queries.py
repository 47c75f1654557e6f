"""The journal's reads: synchronous queries over the reader connection, for the CLI, a restart and
the dispatcher's look-ups. They see committed rows only (queued writes wait for `flush()`)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import TYPE_CHECKING, Any

from broadcastd.errors import JournalError
from broadcastd.journal.schema import DISPATCH_COLS, AckRow, DispatchRow, SkipRow
from broadcastd.models import Transition

if TYPE_CHECKING:
    import threading
    from pathlib import Path


class JournalReader:
    """A connection to read a journal with, shared by threads under a lock; whoever opens it
    (`Journal`, `History`) sets the three attributes."""

    path: Path
    _reader: sqlite3.Connection
    _read_lock: threading.Lock

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"cannot read journal {self.path}: {exc}") from None


class JournalReads(JournalReader):
    """What a journal can be asked; `Journal` opens the connection and owns the lock."""

    def _dispatches(self, where: str, params: tuple[Any, ...] = ()) -> list[DispatchRow]:
        sql = f"SELECT {DISPATCH_COLS} FROM dispatches {where}"  # noqa: S608 - fixed fragments
        return [DispatchRow(*r) for r in self._query(sql, params)]

    def dispatch(self, playlist_id: str) -> DispatchRow | None:
        rows = self._dispatches("WHERE id=?", (playlist_id,))
        return rows[0] if rows else None

    def dispatches_for(self, date: dt.date | str, slot: str | None = None) -> list[DispatchRow]:
        day = date.isoformat() if isinstance(date, dt.date) else date
        if slot is None:
            return self._dispatches("WHERE date=? ORDER BY slot, hamlet, created_at, id", (day,))
        return self._dispatches(
            "WHERE date=? AND slot=? ORDER BY hamlet, created_at, id", (day, slot)
        )

    def dispatches_between(self, first: dt.date, last: dt.date) -> list[DispatchRow]:
        where = "WHERE date BETWEEN ? AND ? ORDER BY date, slot, hamlet, created_at"
        return self._dispatches(where, (first.isoformat(), last.isoformat()))

    def unpublished(self, now: float) -> list[DispatchRow]:
        """The outbox: journaled, never acknowledged by the broker, not cancelled, not expired."""
        where = (
            "WHERE published_at IS NULL AND cancelled_at IS NULL AND expires_at > ?"
            " ORDER BY created_at"
        )
        return self._dispatches(where, (now,))

    def live(self, now: float) -> list[DispatchRow]:
        """Playlists that could still play (neither cancelled nor expired), newest first per
        hamlet."""
        where = (
            "WHERE cancelled_at IS NULL AND expires_at > ? ORDER BY hamlet,"
            " COALESCE(published_at, created_at) DESC, seq DESC"
        )
        return self._dispatches(where, (now,))

    def latest_per_hamlet(self, now: float) -> list[DispatchRow]:
        """Per hamlet, the playlist its retained topic should hold now: the newest live one."""
        latest: dict[str, DispatchRow] = {}
        for row in self.live(now):
            latest.setdefault(row.hamlet, row)
        return list(latest.values())

    def skips_between(self, first: dt.date, last: dt.date) -> list[SkipRow]:
        sql = (
            "SELECT date, slot, hamlet, reason, ts FROM skips WHERE date BETWEEN ? AND ?"
            " ORDER BY date, slot, hamlet, id"
        )
        return [SkipRow(*r) for r in self._query(sql, (first.isoformat(), last.isoformat()))]

    def first_recorded(self) -> float | None:
        """When this journal first recorded anything (None: never), i.e. since when the commune
        has run broadcastd with this state_dir; the daemon journals every start."""
        firsts = " UNION ALL ".join(
            f"SELECT MIN({col}) AS t FROM {table}"  # noqa: S608 - fixed names
            for table, col in (("events", "ts"), ("dispatches", "created_at"), ("skips", "ts"))
        )
        found = self._query(f"SELECT MIN(t) FROM ({firsts})")[0][0]  # noqa: S608 - fixed names
        return None if found is None else float(found)

    def event_details(self, kind: str) -> list[str]:
        sql = "SELECT detail FROM events WHERE kind=? ORDER BY id"
        return [str(r[0]) for r in self._query(sql, (kind,))]

    def max_seq(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM dispatches")[0][0])

    def acks_for(self, playlist_id: str) -> list[AckRow]:
        sql = (
            "SELECT node, hamlet, playlist, status, ts, detail, received_at FROM acks"
            " WHERE playlist=? ORDER BY id"
        )
        return [AckRow(*r) for r in self._query(sql, (playlist_id,))]

    def latest_transitions(self) -> dict[str, Transition]:
        """node -> its most recent transition (what `broadcastd nodes` shows)."""
        sql = (
            'SELECT node, hamlet, "from", "to", cause, ts FROM transitions WHERE id IN'
            " (SELECT MAX(id) FROM transitions GROUP BY node)"
        )
        return {r[0]: Transition(*r) for r in self._query(sql)}

    def last_acks(self) -> dict[str, AckRow]:
        """node -> its most recent ack."""
        sql = (
            "SELECT node, hamlet, playlist, status, ts, detail, received_at FROM acks"
            " WHERE id IN (SELECT MAX(id) FROM acks GROUP BY node)"
        )
        return {r[0]: AckRow(*r) for r in self._query(sql)}

    def integrity_check(self) -> str:
        return str(self._query("PRAGMA integrity_check")[0][0])
