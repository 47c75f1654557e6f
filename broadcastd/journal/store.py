"""The journal: SQLite in WAL mode, the daemon's memory across restarts and the source of reports.

Writes are queued by the event loop and committed in batches in a thread (`run()`), so a burst
of acks never blocks the loop on fsync. Each writer has one form, chosen by what its caller needs:

- the outbox (`record_dispatch`, `mark_published`, `mark_cancelled`) is async and returns once
  committed: a playlist must be journaled before it is published, and a publish or cancel is
  recorded before the dispatcher moves on;
- every other writer (`record_ack`, `record_transition`, `record_event`, `record_reload`,
  `record_skip`) is a plain call that queues the row and returns: there is nothing to wait for,
  and the node registry must journal a transition from synchronous code. The next batch commits
  it; `flush()` is the one awaitable, for whoever needs those rows committed (shutdown, tests).

Every row is mirrored into the `audit` hash chain in the same transaction (see audit.py).
`synchronous=FULL`: a commit survives kill -9 and a power cut, which a commune office without a
UPS will see; batching keeps the fsync count low. The reads are queries.py's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from broadcastd.errors import JournalError
from broadcastd.journal.audit import AUDITED, GENESIS, canonical, chain_hash, row_dict
from broadcastd.journal.queries import JournalReads

# The schema and row types live in broadcastd.journal.schema; re-exported so callers keep
# importing them from here.
from broadcastd.journal.schema import MIGRATIONS as MIGRATIONS
from broadcastd.journal.schema import SCHEMA_VERSION as SCHEMA_VERSION
from broadcastd.journal.schema import AckRow as AckRow
from broadcastd.journal.schema import DispatchRow as DispatchRow
from broadcastd.journal.schema import SkipRow as SkipRow

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from broadcastd.models import Ack, Transition
    from broadcastd.protocol import Playlist, Signed

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


# One queued write: (sql, params, table, audit key; None means the inserted row's id).
_Op = tuple[str, tuple[Any, ...], str, str | None]


class Journal(JournalReads):
    """Owns two connections: a writer used only inside `_commit` (in a thread) and a reader
    (its queries are JournalReads')."""

    def __init__(self, path: Path, *, clock: Callable[[], float], readonly: bool) -> None:
        self.path = path
        self._clock = clock
        self._readonly = readonly
        self._pending: list[tuple[_Op, asyncio.Future[int] | None]] = []
        self._wake = asyncio.Event()
        self._drain_lock = asyncio.Lock()
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()  # close() must not pull the connection from a commit
        self._head = GENESIS
        self._next_seq = 1
        try:
            if readonly:
                self._writer = None
                self._reader = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, check_same_thread=False
                )
                self._check_version(self._reader)
            else:
                self._writer = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._migrate(self._writer)
                self._reader = sqlite3.connect(path, check_same_thread=False)
                row = self._writer.execute(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                if row is not None:
                    self._next_seq, self._head = row[0] + 1, row[1]
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"cannot open journal {path}: {exc}") from None

    @classmethod
    def open(
        cls, path: Path, *, clock: Callable[[], float] = time.time, readonly: bool = False
    ) -> Journal:
        if readonly and not path.exists():
            raise JournalError(f"no journal at {path} (has the daemon run with this state_dir?)")
        return cls(path, clock=clock, readonly=readonly)

    def close(self) -> None:
        """Commit what is still queued (blocking is fine at shutdown), then close."""
        if self._pending and self._writer is not None:
            batch, self._pending = self._pending, []
            try:
                self._commit([op for op, _ in batch])
            except JournalError as exc:
                log.error("journal closed with %d writes lost: %s", len(batch), exc)
        with self._write_lock:
            for conn in (self._writer, self._reader):
                if conn is not None:
                    conn.close()
            self._writer = None

    # -- schema ------------------------------------------------------------------------------------

    @staticmethod
    def _check_version(conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal schema version must be at most {SCHEMA_VERSION}, got: {version} "
                "(written by a newer broadcastd)"
            )
        return version

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        version = self._check_version(conn)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number - 1].split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            log.info("journal %s migrated to schema version %d", self.path, number)

    # -- the writer task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Commit queued writes in batches, in a thread, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except JournalError as exc:
                log.error("journal write failed, retrying: %s", exc)
                await asyncio.sleep(RETRY_DELAY_S)
                self._wake.set()

    async def flush(self) -> None:
        """Return once every write queued before this call is committed."""
        await self._drain()

    async def _drain(self) -> None:
        async with self._drain_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                results = await asyncio.to_thread(self._commit, [op for op, _ in batch])
            except JournalError:
                self._pending[:0] = batch  # keep order; nothing of the batch was committed
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future is not None and not future.done():
                    future.set_result(result)

    def _commit(self, ops: list[_Op]) -> list[int]:
        """One transaction for the batch: each write plus its audit row. Runs in a thread."""
        with self._write_lock:
            return self._commit_locked(ops)

    def _commit_locked(self, ops: list[_Op]) -> list[int]:
        conn = self._writer
        if conn is None:
            raise JournalError("journal is read-only or closed")
        head, seq = self._head, self._next_seq
        results: list[int] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params, table, audit_key in ops:
                cur = conn.execute(sql, params)
                results.append(cur.rowcount)
                if cur.rowcount == 0:
                    continue  # a no-op insert or update changes nothing to audit
                key = audit_key if audit_key is not None else str(cur.lastrowid)
                op = "update" if sql.startswith("UPDATE") else "insert"
                # Hash the row as SQLite stores it (REAL turns 5 into 5.0), as verify reads it.
                sel = conn.execute(f"SELECT * FROM {table} WHERE {AUDITED[table]}=?", (key,))  # noqa: S608 - fixed names
                content = canonical(table, key, op, row_dict(sel, sel.fetchone()))
                prev, head = head, chain_hash(head, content)
                conn.execute(
                    "INSERT INTO audit VALUES (?,?,?,?,?,?,?)",
                    (seq, table, key, op, content, prev, head),
                )
                seq += 1
            conn.execute("COMMIT")
        except (sqlite3.Error, ValueError) as exc:  # ValueError: a NaN cannot be hashed canonically
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise JournalError(f"journal write failed: {exc}") from None
        self._head, self._next_seq = head, seq
        return results

    def _enqueue(self, op: _Op, *, wait: bool = False) -> asyncio.Future[int] | None:
        if self._readonly:
            raise JournalError("journal opened read-only")
        future = asyncio.get_running_loop().create_future() if wait else None
        self._pending.append((op, future))
        self._wake.set()
        return future

    # -- outbox writes: each returns once committed -----------------------------------------------

    async def record_dispatch(self, signed: Signed[Playlist]) -> None:
        """Journal a signed playlist before publishing it (the outbox); committed on return.

        Recording the same id again is a no-op: the first envelope stays the one re-published.
        """
        pl = signed.envelope
        sql = (
            "INSERT INTO dispatches (id, date, slot, hamlet, play_at, expires_at, priority, status,"
            " seq, items, envelope, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(id) DO NOTHING"
        )
        params = (
            pl.id,
            _slot_date(pl.id, pl.play_at),
            pl.slot,
            pl.hamlet,
            pl.play_at,
            pl.expires_at,
            pl.priority,
            pl.status,
            0 if pl.seq is None else pl.seq,
            _dumps([asdict(item) for item in pl.items]),
            signed.wire.decode(),
            self._clock(),
        )
        future = self._enqueue((sql, params, "dispatches", pl.id), wait=True)
        await self._drain()
        assert future is not None  # noqa: S101 - wait=True always returns a future
        await future

    async def mark_published(self, playlist_id: str, ts: float) -> bool:
        """Record the first broker-acknowledged publish; True if this was the first."""
        sql = "UPDATE dispatches SET published_at=? WHERE id=? AND published_at IS NULL"
        return await self._update(sql, (ts, playlist_id), playlist_id)

    async def mark_cancelled(self, playlist_id: str, ts: float) -> bool:
        sql = "UPDATE dispatches SET cancelled_at=? WHERE id=? AND cancelled_at IS NULL"
        return await self._update(sql, (ts, playlist_id), playlist_id)

    async def _update(self, sql: str, params: tuple[Any, ...], playlist_id: str) -> bool:
        future = self._enqueue((sql, params, "dispatches", playlist_id), wait=True)
        await self._drain()
        assert future is not None  # noqa: S101 - wait=True always returns a future
        return await future > 0

    # -- log writes: queued, committed by the next batch or `flush()` ---------------------------

    def record_ack(self, ack: Ack, hamlet: str) -> None:
        """Once per ack: a node sends an ack again until a receipt confirms it (a daemon killed
        before its receipt went out gets it twice), and the same ack is the same row."""
        sql = (
            "INSERT INTO acks (node, hamlet, playlist, status, ts, detail, received_at)"
            " SELECT ?,?,?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM acks WHERE playlist=?"
            " AND node=? AND status=? AND ts=? AND detail=?)"
        )
        params = (
            *(ack.node, hamlet, ack.playlist, ack.status, ack.ts, ack.detail, self._clock()),
            *(ack.playlist, ack.node, ack.status, ack.ts, ack.detail),
        )
        self._enqueue((sql, params, "acks", None))

    def record_transition(self, t: Transition) -> None:
        """Also NodeRegistry's `journal_cb`, called from synchronous code: it never blocks."""
        sql = 'INSERT INTO transitions (node, hamlet, "from", "to", cause, ts) VALUES (?,?,?,?,?,?)'
        self._enqueue((sql, (t.node, t.hamlet, t.from_, t.to, t.cause, t.ts), "transitions", None))

    def record_reload(self, result: str, detail: str) -> None:
        sql = "INSERT INTO reloads (ts, result, detail) VALUES (?,?,?)"
        self._enqueue((sql, (self._clock(), result, detail), "reloads", None))

    def record_event(self, kind: str, detail: str) -> None:
        sql = "INSERT INTO events (ts, kind, detail) VALUES (?,?,?)"
        self._enqueue((sql, (self._clock(), kind, detail), "events", None))

    def record_skip(self, date: dt.date, slot: str, hamlet: str, reason: str) -> None:
        sql = "INSERT INTO skips (date, slot, hamlet, reason, ts) VALUES (?,?,?,?,?)"
        params = (date.isoformat(), slot, hamlet, reason, self._clock())
        self._enqueue((sql, params, "skips", None))


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _slot_date(playlist_id: str, play_at: int) -> str:
    """Playlist ids start with the slot's date (YYYYMMDD-...); fall back to play_at's local date."""
    head = playlist_id[:8]
    if head.isdigit():
        try:
            return dt.datetime.strptime(head, "%Y%m%d").date().isoformat()  # noqa: DTZ007 - a date
        except ValueError:
            pass
    return dt.datetime.fromtimestamp(play_at).date().isoformat()  # noqa: DTZ006 - server local date
