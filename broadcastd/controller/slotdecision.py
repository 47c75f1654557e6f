"""What a slot's dispatch does for each hamlet, decided against what the journal already holds.

A slot is dispatched at its publish time, again at start-up while its window is open, and again
when a reload changed it (its time, or what a hamlet hears). Each time, per hamlet, against the
newest playlist journaled for that date, slot and hamlet:

- none yet: a new playlist;
- the same clips at the same time: it stands, re-published as journaled (nodes see an id they
  already have);
- the same speech (same announcements and languages, each clip the same or a re-render of it) at
  another time, or in re-rendered audio: once it has aired it is not sent again (the hamlet heard
  exactly this, and a playlist plays once); before that, a new playlist supersedes it on nodes;
- other speech: a new playlist, which plays even if the slot already aired;
- a cancelled playlist is never brought back by the same speech.

Every decision is logged and journaled: a playlist sent (or re-sent) as a `slot` event with the
reason, a hamlet left without one as a skip, which `broadcastd report` lists.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from broadcastd.localtime import local_time
from broadcastd.protocol.titles import playlist_title

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from broadcastd import protocol
    from broadcastd.journal.store import DispatchRow, Journal
    from broadcastd.models import Clip, SlotPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["new", "keep", "skip"]
    reason: str
    latest: DispatchRow | None = None  # the journaled playlist it was decided against


def decide(  # noqa: PLR0911, PLR0913 - one return per case of the module docstring
    latest: DispatchRow | None,
    entries: Sequence[protocol.PlaylistItem],
    clips: Sequence[Clip],
    play_at: int,
    *,
    now: float,
    tz: dt.tzinfo,
) -> Verdict:
    """The decision for one hamlet: `entries` (with their `clips`) playing at `play_at`."""
    if latest is None:
        return Verdict("new", "new playlist")
    old = latest.item_list()
    identical = [i.get("sha256") for i in old] == [e.sha256 for e in entries]
    if identical and latest.play_at == play_at:
        if latest.cancelled_at is not None:
            return Verdict("skip", _cancelled(latest, tz), latest)
        return Verdict("keep", f"unchanged: {latest.id} stands", latest)
    if not _same_speech(old, entries, clips):
        return Verdict("new", f"content changed since {latest.id}", latest)
    if latest.cancelled_at is not None:
        return Verdict("skip", _cancelled(latest, tz), latest)
    if latest.play_at <= now:
        aired = local_time(latest.play_at, tz)
        reason = f"content unchanged since {latest.id} aired at {aired}; it plays once"
        return Verdict("skip", reason, latest)
    if latest.play_at != play_at:
        moved = f"{local_time(latest.play_at, tz)} to {local_time(play_at, tz)}"
        return Verdict("new", f"moved from {moved}, superseding {latest.id}", latest)
    return Verdict("new", f"audio spoken again, superseding {latest.id}", latest)


def _cancelled(row: DispatchRow, tz: dt.tzinfo) -> str:
    return f"{row.id} with this content was cancelled at {local_time(row.cancelled_at or 0, tz)}"


def _same_speech(
    old: list[dict[str, object]], entries: Sequence[protocol.PlaylistItem], clips: Sequence[Clip]
) -> bool:
    if len(old) != len(entries):
        return False
    return all(
        o.get("announcement") == e.announcement
        and o.get("lang") == e.lang
        and (o.get("sha256") == c.sha256 or o.get("sha256") in c.earlier)
        for o, e, c in zip(old, entries, clips, strict=True)
    )


def latest_dispatch(journal: Journal, plan: SlotPlan) -> DispatchRow | None:
    """The newest playlist journaled for the plan's date, slot and hamlet."""
    rows = [r for r in journal.dispatches_for(plan.date, plan.slot) if r.hamlet == plan.hamlet]
    return rows[-1] if rows else None  # ordered by creation


def note_sent(
    journal: Journal,
    plan: SlotPlan,
    signed: protocol.Signed[protocol.Playlist],
    why: str,
    reason: str,
) -> None:
    """Log and journal that `signed` goes out for the plan's hamlet, and why."""
    pl = signed.envelope
    when = local_time(pl.play_at, plan.play_at.tzinfo)
    log.info(
        'slot %s of %s, hamlet %s: dispatched %s "%s", plays at %s (%s: %s)',
        plan.slot, plan.date, plan.hamlet, pl.id, playlist_title(pl.items), when, why, reason,
    )  # fmt: skip
    detail = {
        "date": plan.date.isoformat(),
        "slot": plan.slot,
        "hamlet": plan.hamlet,
        "decision": "dispatched",
        "playlist": pl.id,
        "play_at": when,
        "why": why,
        "reason": reason,
    }
    journal.record_event("slot", json.dumps(detail, ensure_ascii=False))


def note_skip(journal: Journal, plan: SlotPlan, why: str, reason: str) -> None:
    """Log and journal that the plan's hamlet gets no (new) playlist in this slot, and why."""
    level = logging.WARNING if reason.startswith("expired") else logging.INFO
    log.log(
        level, "slot %s of %s, hamlet %s: skipped (%s): %s",
        plan.slot, plan.date, plan.hamlet, why, reason,
    )  # fmt: skip
    journal.record_skip(plan.date, plan.slot, plan.hamlet, reason)
