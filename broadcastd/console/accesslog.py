"""Who came to the console and what they were refused: logins, logouts, refusals, account and
token changes, in an append-only, hash-chained table of the console's file.

Each entry's hash is `sha256(previous hash + canonical JSON of the entry)`, as in the journal's
audit chain, so an entry edited or deleted behind the console's back breaks the chain from there
on, and the Nhật ký page says so.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.console.store import StoreError
from broadcastd.journal.audit import GENESIS, ChainWalk, chain_hash
from broadcastd.journal.history import newest_first

if TYPE_CHECKING:
    from broadcastd.console.store import ConsoleStore

MAX_DETAIL = 500
KINDS = (
    "login",
    "logout",
    "refused",  # wrong password, unknown account, throttled, CSRF, role, token
    "expired",
    "operator",  # an account added, changed or removed (CLI)
    "token",  # an API token created or revoked (CLI)
    "action",  # an announcement, approval, cancel, stop or volume asked of the daemon
)


@dataclass(frozen=True, slots=True)
class AccessEntry:
    seq: int
    ts: float
    kind: str
    operator: str
    address: str
    detail: str


def _content(ts: float, kind: str, operator: str, address: str, detail: str) -> str:
    return json.dumps(
        {"ts": ts, "kind": kind, "operator": operator, "address": address, "detail": detail},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def record(  # noqa: PLR0913 - one entry's fields
    store: ConsoleStore, ts: float, kind: str, operator: str, *, address: str, detail: str = ""
) -> None:
    """Append one entry (the chain's head is read in the same transaction)."""
    operator, detail = operator[:64], detail[:MAX_DETAIL]
    try:
        with store.transaction() as conn:
            row = conn.execute("SELECT seq, hash FROM access ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            digest = chain_hash(prev, _content(ts, kind, operator, address, detail))
            conn.execute(
                "INSERT INTO access VALUES (?,?,?,?,?,?,?,?)",
                (seq, ts, kind, operator, address, detail, prev, digest),
            )
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot write the access log in {store.path}: {exc}") from None


def entries(
    store: ConsoleStore, *, limit: int, before: int | None = None, kind: str | None = None
) -> list[AccessEntry]:
    """The newest entries first, `before` a seq (for the next page), optionally of one kind."""
    select = "SELECT seq, ts, kind, operator, address, detail FROM access"
    sql, params = newest_first(select, "seq", limit=limit, before=before, kind=kind)
    return [AccessEntry(*r) for r in store.query(sql, params)]


@dataclass(frozen=True, slots=True)
class ChainStatus:
    rows: int
    broken_at: int | None  # the first seq whose entry or hash does not follow from the one before

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify(store: ConsoleStore) -> ChainStatus:
    chain = ChainWalk()
    for seq, ts, kind, operator, address, detail, prev_hash, digest in store.query(
        "SELECT * FROM access ORDER BY seq"
    ):
        content = _content(ts, kind, operator, address, detail)
        if chain.check(seq, content, prev_hash, digest):
            return ChainStatus(chain.length, seq)
    return ChainStatus(chain.length, None)
