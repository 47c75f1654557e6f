"""The console's own SQLite file (`state_dir/console.sqlite3`): accounts, tokens, sessions, failed
logins and the access log.

It is not the journal: the daemon is the journal's only writer (its audit chain is kept in the
daemon's memory), and logins must still be recorded while the daemon is down. The access log
has a hash chain of its own, in the same form as the journal's (see accesslog.py).

Secrets are never stored: passwords as argon2 hashes, API tokens and session ids as SHA-256
digests (they are long random strings, so a fast hash is enough), so a copy of this file opens
no session and no token. The file is created 0600 inside the 0700 state directory.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE operators (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, scope TEXT NOT NULL,
    digest TEXT NOT NULL, created REAL NOT NULL, last_used REAL);
CREATE TABLE sessions (digest TEXT PRIMARY KEY, operator TEXT NOT NULL, csrf TEXT NOT NULL,
    created REAL NOT NULL, seen REAL NOT NULL, address TEXT NOT NULL);
CREATE INDEX sessions_operator ON sessions(operator);
CREATE TABLE failures (id INTEGER PRIMARY KEY, ts REAL NOT NULL, account TEXT NOT NULL,
    address TEXT NOT NULL);
CREATE INDEX failures_account ON failures(account, ts);
CREATE INDEX failures_address ON failures(address, ts);
CREATE TABLE access (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL,
    operator TEXT NOT NULL, address TEXT NOT NULL, detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER access_no_update BEFORE UPDATE ON access
    BEGIN SELECT RAISE(ABORT, 'access rows are append-only'); END;
CREATE TRIGGER access_no_delete BEFORE DELETE ON access
    BEGIN SELECT RAISE(ABORT, 'access rows are append-only'); END;
"""


class StoreError(BroadcastdError):
    """The console's file cannot be opened or written, or a change it was asked for is refused."""


@dataclass(frozen=True, slots=True)
class OperatorRow:
    name: str
    role: str
    hash: str
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    name: str
    scope: str
    digest: str
    created: float
    last_used: float | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    digest: str
    operator: str
    csrf: str
    created: float
    seen: float
    address: str


class ConsoleStore:
    """One connection, serialised by a lock: the console calls it from worker threads."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> ConsoleStore:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                conn.close()
                raise StoreError(f"{path} was written by a newer broadcastd (schema {version})")
            if version == 0:
                conn.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the console's file {path}: {exc}") from None
        return cls(conn, path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot read {self.path}: {exc}") from None

    def write(self, *statements: tuple[str, tuple[Any, ...]]) -> list[int]:
        """Run the statements in one transaction; the row counts they changed."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                counts = [conn.execute(sql, params).rowcount for sql, params in statements]
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"cannot write {self.path}: {exc}") from None
        return counts

    def transaction(self) -> _Transaction:
        """The lock and an open write transaction, for a read-then-write (the access chain)."""
        return _Transaction(self)

    # -- operators ---------------------------------------------------------------------------------

    def operator(self, name: str) -> OperatorRow | None:
        rows = self.query("SELECT * FROM operators WHERE name=?", (name,))
        return OperatorRow(*rows[0]) if rows else None

    def operators(self) -> list[OperatorRow]:
        return [OperatorRow(*r) for r in self.query("SELECT * FROM operators ORDER BY name")]

    def add_operator(self, name: str, role: str, password_hash: str, now: float) -> None:
        if self.operator(name) is not None:
            raise StoreError(f"operator {name!r} exists; use `broadcastd operator passwd`")
        self.write(
            ("INSERT INTO operators VALUES (?,?,?,?,?)", (name, role, password_hash, now, now))
        )

    def update_operator(
        self, name: str, *, password_hash: str | None, role: str | None, now: float
    ) -> None:
        """A new password or role; every session of the operator ends with it."""
        counts = self.write(
            (
                (
                    "UPDATE operators SET hash=COALESCE(?, hash), role=COALESCE(?, role),"
                    " updated=? WHERE name=?"
                ),
                (password_hash, role, now, name),
            ),
            ("DELETE FROM sessions WHERE operator=?", (name,)),
        )
        if counts[0] == 0:
            raise StoreError(f"no operator named {name!r}")

    def remove_operator(self, name: str) -> None:
        counts = self.write(
            ("DELETE FROM operators WHERE name=?", (name,)),
            ("DELETE FROM sessions WHERE operator=?", (name,)),
        )
        if counts[0] == 0:
            raise StoreError(f"no operator named {name!r}")

    # -- API tokens --------------------------------------------------------------------------------

    def add_token(self, row: TokenRow) -> None:
        if self.query("SELECT 1 FROM tokens WHERE name=?", (row.name,)):
            raise StoreError(f"a token named {row.name!r} exists; revoke it first")
        self.write(
            (
                "INSERT INTO tokens VALUES (?,?,?,?,?,?)",
                (row.id, row.name, row.scope, row.digest, row.created, row.last_used),
            )
        )

    def token(self, token_id: str) -> TokenRow | None:
        rows = self.query("SELECT * FROM tokens WHERE id=?", (token_id,))
        return TokenRow(*rows[0]) if rows else None

    def tokens(self) -> list[TokenRow]:
        return [TokenRow(*r) for r in self.query("SELECT * FROM tokens ORDER BY name")]

    def revoke_token(self, name: str) -> None:
        if self.write(("DELETE FROM tokens WHERE name=?", (name,)))[0] == 0:
            raise StoreError(f"no token named {name!r}")

    def token_used(self, token_id: str, now: float) -> None:
        self.write(("UPDATE tokens SET last_used=? WHERE id=?", (now, token_id)))

    # -- sessions ----------------------------------------------------------------------------------

    def add_session(self, row: SessionRow) -> None:
        self.write(
            (
                "INSERT INTO sessions VALUES (?,?,?,?,?,?)",
                (row.digest, row.operator, row.csrf, row.created, row.seen, row.address),
            )
        )

    def session(self, digest: str) -> SessionRow | None:
        rows = self.query("SELECT * FROM sessions WHERE digest=?", (digest,))
        return SessionRow(*rows[0]) if rows else None

    def session_seen(self, digest: str, now: float) -> None:
        self.write(("UPDATE sessions SET seen=? WHERE digest=?", (now, digest)))

    def end_session(self, digest: str) -> bool:
        return self.write(("DELETE FROM sessions WHERE digest=?", (digest,)))[0] > 0

    def end_stale_sessions(self, seen_before: float, created_before: float) -> int:
        return self.write(
            ("DELETE FROM sessions WHERE seen<? OR created<?", (seen_before, created_before))
        )[0]

    # -- failed logins -----------------------------------------------------------------------------

    def add_failure(self, ts: float, account: str, address: str) -> None:
        self.write(
            ("INSERT INTO failures (ts, account, address) VALUES (?,?,?)", (ts, account, address))
        )

    def failures_since(
        self, ts: float, *, account: str | None = None, address: str | None = None
    ) -> int:
        if account is not None:
            sql, key = "SELECT COUNT(*) FROM failures WHERE account=? AND ts>=?", account
        else:
            sql, key = "SELECT COUNT(*) FROM failures WHERE address=? AND ts>=?", str(address)
        return int(self.query(sql, (key, ts))[0][0])

    def forget_failures(self, before: float) -> None:
        self.write(("DELETE FROM failures WHERE ts<?", (before,)))


class _Transaction:
    def __init__(self, store: ConsoleStore) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Connection:
        self._store._lock.acquire()  # noqa: SLF001 - the store's own helper
        conn = self._store._conn  # noqa: SLF001
        conn.execute("BEGIN IMMEDIATE")
        return conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        conn = self._store._conn  # noqa: SLF001
        try:
            conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self._store._lock.release()  # noqa: SLF001
