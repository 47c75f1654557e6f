"""What has been sent, as the journal says, for the pages that undo it: recent ad-hoc
announcements (to cancel), the playlists one cancel would reach (found as the daemon finds
them), and what a stop would withdraw."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.models import ADHOC_KINDS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from broadcastd.journal.store import DispatchRow, Journal

NOTICE = "exercise-notice"  # the clip an exercise starts with, never what it announces
RECENT_LIMIT = 20


def is_adhoc(slot: str) -> bool:
    """An ad-hoc playlist's slot is `announce-N`, `emergency-N` or `exercise-N`."""
    return any(slot == base or slot.startswith(f"{base}-") for base in ADHOC_KINDS)


def _window(today: dt.date) -> tuple[dt.date, dt.date]:
    # the daemon looks an announcement id up within the same days (operations._cancel_rows)
    return today - dt.timedelta(days=1), today + dt.timedelta(days=1)


def _announcement(row: DispatchRow) -> tuple[str, str]:
    """(announcement id, title) of an ad-hoc playlist: its one item after any exercise notice."""
    for item in row.item_list():
        if item.get("announcement") != NOTICE:
            return str(item.get("announcement", "")), str(item.get("title", ""))
    return "", ""


@dataclass(frozen=True, slots=True)
class Sent:
    """One announcement (ad-hoc: every hamlet it went to) or one playlist (a slot's)."""

    id: str  # what `cancel` takes: announce-N, or the playlist id
    title: str
    priority: str
    status: str  # live | exercise
    hamlets: tuple[str, ...]
    playlists: tuple[str, ...]
    play_at: float
    expires_at: float
    cancelled: bool  # every playlist of it was cancelled or stopped

    def playable(self, now: float) -> bool:
        return not self.cancelled and now < self.expires_at


def _sent(key: str, title: str, rows: list[DispatchRow]) -> Sent:
    return Sent(
        id=key,
        title=title,
        priority=rows[0].priority,
        status=rows[0].status,
        hamlets=tuple(dict.fromkeys(r.hamlet for r in rows)),
        playlists=tuple(r.id for r in rows),
        play_at=min(r.play_at for r in rows),
        expires_at=max(r.expires_at for r in rows),
        cancelled=all(r.cancelled_at is not None for r in rows),
    )


def _grouped(rows: Iterable[DispatchRow]) -> list[Sent]:
    groups: dict[str, tuple[str, list[DispatchRow]]] = {}
    for row in rows:
        key, title = _announcement(row)
        if key:
            groups.setdefault(key, (title, []))[1].append(row)
    return [_sent(key, title, members) for key, (title, members) in groups.items()]


def recent(journal: Journal, today: dt.date) -> list[Sent]:
    """Ad-hoc announcements of yesterday, today and tomorrow, newest first."""
    rows = [r for r in journal.dispatches_between(*_window(today)) if is_adhoc(r.slot)]
    found = _grouped(rows)
    found.sort(key=lambda s: (s.play_at, s.id), reverse=True)
    return found[:RECENT_LIMIT]


def cancel_target(journal: Journal, target: str, today: dt.date) -> Sent | None:
    """What `cancel target` reaches: one playlist by its id, or every playlist of an ad-hoc
    announcement id; None if the journal knows neither."""
    row = journal.dispatch(target)
    if row is not None:
        return _sent(row.id, ", ".join(str(i.get("title", "")) for i in row.item_list()), [row])
    for sent in _grouped(
        r for r in journal.dispatches_between(*_window(today)) if is_adhoc(r.slot)
    ):
        if sent.id == target:
            return sent
    return None


def stoppable(journal: Journal, hamlets: tuple[str, ...], now: float) -> list[Sent]:
    """Playlists that could still play in `hamlets`: what a stop there withdraws."""
    return [
        _sent(row.id, ", ".join(str(i.get("title", "")) for i in row.item_list()), [row])
        for row in journal.live(now)
        if row.hamlet in hamlets
    ]
