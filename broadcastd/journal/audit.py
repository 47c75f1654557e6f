"""The journal's audit hash chain: how a row is hashed, and how a journal file is verified.

Every write to a journal table is mirrored, in the same transaction, by an append-only `audit`
row holding the canonical JSON of the row as stored and `sha256(prev_hash + content)`.
Verification walks the chain (an edited or deleted audit row breaks it), then compares every table
row with the last audit entry for its key (a row edited, inserted or deleted behind the journal's
back no longer matches). What the chain alone cannot show is its *tail* cut off together with the
rows it covers; anchoring the head hash elsewhere (a log line, a printout) closes that gap.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from pathlib import Path

GENESIS = "0" * 64
# table -> the column that identifies a row in the audit mirror
AUDITED: dict[str, str] = {
    "dispatches": "id",
    "acks": "id",
    "transitions": "id",
    "reloads": "id",
    "events": "id",
    "skips": "id",
}


class AuditError(BroadcastdError):
    """The journal cannot be audited at all (missing, not a journal, unreadable)."""


def canonical(table: str, key: str, op: str, row: dict[str, Any]) -> str:
    """The exact text that is hashed for one row; stable across Python and SQLite versions."""
    return json.dumps(
        {"table": table, "key": key, "op": op, "row": row},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


class ChainWalk:
    """Follows a hash chain link by link, in seq order from 1: each link must carry the next seq,
    name the previous link's hash, and hash to `chain_hash(previous, content)`."""

    MISSING = "missing"  # links missing before this one
    ALTERED = "altered"  # the link or its hash was altered

    def __init__(self) -> None:
        self.head = GENESIS
        self.length = 0  # links followed so far

    def check(self, seq: int, content: str, prev_hash: str, digest: str) -> str | None:
        """None if the link follows (and becomes the head), else MISSING or ALTERED."""
        if seq != self.length + 1:
            return self.MISSING
        if prev_hash != self.head or chain_hash(self.head, content) != digest:
            return self.ALTERED
        self.head, self.length = digest, seq
        return None


def row_dict(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, values, strict=True)}


@dataclass(frozen=True, slots=True)
class Finding:
    """The first place the journal differs from its audit chain."""

    table: str
    key: str
    reason: str
    seq: int | None = None  # the audit row involved, if any

    def __str__(self) -> str:
        where = f"{self.table}[{self.key}]"
        at = f" (audit seq {self.seq})" if self.seq is not None else ""
        return f"{where}{at}: {self.reason}"


def verify(journal_path: Path) -> Finding | None:
    """None if every row matches the chain, else the first altered row."""
    if not journal_path.exists():
        raise AuditError(f"no journal at {journal_path}")
    try:
        conn = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise AuditError(f"cannot open {journal_path}: {exc}") from None
    try:
        return _verify(conn)
    except sqlite3.DatabaseError as exc:
        raise AuditError(f"{journal_path} is not a readable journal: {exc}") from None
    finally:
        conn.close()


def _verify(conn: sqlite3.Connection) -> Finding | None:  # noqa: PLR0911 - one return per kind of tampering
    latest: dict[tuple[str, str], tuple[int, str]] = {}  # (table, key) -> (seq, content)
    chain = ChainWalk()
    for seq, table, key, op, content, prev_hash, digest in conn.execute(
        "SELECT seq, tbl, key, op, content, prev_hash, hash FROM audit ORDER BY seq"
    ):
        broken = chain.check(seq, content, prev_hash, digest)
        if broken == ChainWalk.MISSING:
            return Finding(table, key, f"audit rows missing before seq {seq}", seq)
        if broken:
            return Finding(table, key, "audit chain broken: row or its hash was altered", seq)
        if content != canonical(table, key, op, json.loads(content)["row"]):
            return Finding(table, key, "audit content is not canonical", seq)
        latest[(table, key)] = (seq, content)
    for table, key_col in AUDITED.items():
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY {key_col}")  # noqa: S608 - fixed names
        for values in cur:
            row = row_dict(cur, values)
            key = str(row[key_col])
            seen = latest.pop((table, key), None)
            if seen is None:
                return Finding(table, key, "row not in the audit chain (inserted behind its back)")
            stored = json.loads(seen[1])["row"]
            if canonical(table, key, "", stored) != canonical(table, key, "", row):
                return Finding(table, key, "row differs from its audited content", seen[0])
    if latest:
        (table, key), (seq, _) = min(latest.items(), key=lambda kv: kv[1][0])
        return Finding(table, key, "row deleted (audited but no longer present)", seq)
    return None
