"""Read-only views of the journal for people: events page by page, a node's transitions over a
window, the audit chain's length. The web console reads these; the daemon never does.

Opened read-only (`mode=ro`): the daemon stays the journal's only writer.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broadcastd.errors import JournalError
from broadcastd.journal.queries import JournalReader
from broadcastd.models import Transition

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    ts: float
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    table: str
    key: str
    op: str
    hash: str


def newest_first(
    select: str, key: str, *, limit: int, before: int | None, kind: str | None
) -> tuple[str, tuple[object, ...]]:
    """`select` (a fixed `SELECT ... FROM table`) paged newest first by its integer `key`: rows
    with key below `before` (the next page), of one `kind` if given, at most `limit`."""
    where: list[str] = ["1=1"]
    params: list[object] = []
    if before is not None:
        where.append(f"{key}<?")
        params.append(before)
    if kind is not None:
        where.append("kind=?")
        params.append(kind)
    sql = f"{select} WHERE {' AND '.join(where)} ORDER BY {key} DESC LIMIT ?"
    return sql, (*params, limit)


class History(JournalReader):
    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise JournalError(f"no journal at {path} (has the daemon run with this state_dir?)")
        self.path = path
        self._read_lock = threading.Lock()
        try:
            self._reader = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"cannot open journal {path}: {exc}") from None

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()

    def events(
        self, *, limit: int, before: int | None = None, kind: str | None = None
    ) -> list[EventRow]:
        """Events (requests, issues, approvals, refusals...), newest first."""
        select = "SELECT id, ts, kind, detail FROM events"
        sql, params = newest_first(select, "id", limit=limit, before=before, kind=kind)
        return [EventRow(*r) for r in self._query(sql, params)]

    def event_kinds(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT kind FROM events ORDER BY kind")]

    def reloads(self, *, limit: int) -> list[EventRow]:
        sql = "SELECT id, ts, result, detail FROM reloads ORDER BY id DESC LIMIT ?"
        return [EventRow(*r) for r in self._query(sql, (limit,))]

    def transitions(self, node: str, since: float) -> tuple[Transition | None, list[Transition]]:
        """The node's last transition before `since` (its state then) and those after, in order."""
        cols = 'node, hamlet, "from", "to", cause, ts'
        before = self._query(
            f"SELECT {cols} FROM transitions WHERE node=? AND ts<? ORDER BY id DESC LIMIT 1",  # noqa: S608
            (node, since),
        )
        after = self._query(
            f"SELECT {cols} FROM transitions WHERE node=? AND ts>=? ORDER BY id",  # noqa: S608
            (node, since),
        )
        return (Transition(*before[0]) if before else None), [Transition(*r) for r in after]

    def audit(self, *, limit: int, before: int | None = None) -> list[AuditRow]:
        sql = "SELECT seq, tbl, key, op, hash FROM audit"
        params: tuple[Any, ...] = (limit,)
        if before is not None:
            sql += " WHERE seq<?"
            params = (before, limit)
        return [AuditRow(*r) for r in self._query(sql + " ORDER BY seq DESC LIMIT ?", params)]

    def audit_head(self) -> tuple[int, str] | None:
        rows = self._query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else None
