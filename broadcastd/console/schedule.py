"""Lịch phát: the coming days per slot and hamlet, as `broadcastd schedule` plans them, with the
audio the speakers got wherever the slot is already dispatched (each clip playable in the page
from the audio store, by its sha256)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.plan.slotplan import build_plan, on_air_seconds

if TYPE_CHECKING:
    from broadcastd.config import LoadedConfig
    from broadcastd.journal.store import Journal
    from broadcastd.models import PlanItem

MAX_DAYS = 14


@dataclass(frozen=True, slots=True)
class Item:
    announcement: str
    title: str
    lang: str
    kind: str  # tts | recording
    priority: str
    duration_s: float
    text: str | None  # what TTS reads, beside a TTS item
    sha256: str | None  # the dispatched clip, once the slot is sent


@dataclass(frozen=True, slots=True)
class HamletSlot:
    hamlet: str
    name: str
    items: tuple[Item, ...]
    dropped: tuple[Item, ...]
    on_air_s: float
    playlist: str | None  # the dispatched playlist id, once sent


@dataclass(frozen=True, slots=True)
class SlotDay:
    date: dt.date
    slot: str
    play_at: dt.datetime
    hamlets: tuple[HamletSlot, ...]


def week(
    loaded: LoadedConfig,
    journal: Journal | None,
    start: dt.date,
    days: int,
    hamlet: str | None = None,
) -> list[SlotDay]:
    config = loaded.config
    names = {h.id: h.name for h in config.hamlets}
    plans = build_plan(loaded, start, min(max(days, 1), MAX_DAYS), hamlet)
    sent = _dispatched(journal, start, days)
    out: list[SlotDay] = []
    for plan in plans:
        if not out or (out[-1].date, out[-1].slot) != (plan.date, plan.slot):
            out.append(SlotDay(plan.date, plan.slot, plan.play_at, ()))
        row = sent.get((plan.date.isoformat(), plan.slot, plan.hamlet))
        clips = row[1] if row else {}
        entry = HamletSlot(
            hamlet=plan.hamlet,
            name=names.get(plan.hamlet, plan.hamlet),
            items=tuple(_item(i, clips) for i in plan.items),
            dropped=tuple(_item(i, {}) for i in plan.dropped),
            on_air_s=on_air_seconds(loaded, plan.items),
            playlist=row[0] if row else None,
        )
        day = out[-1]
        out[-1] = SlotDay(day.date, day.slot, day.play_at, (*day.hamlets, entry))
    return out


def _item(item: PlanItem, clips: dict[tuple[str, str], str]) -> Item:
    return Item(
        announcement=item.announcement,
        title=item.title,
        lang=item.lang,
        kind=item.kind,
        priority=item.priority,
        duration_s=round(item.duration_s, 1),
        text=item.text,
        sha256=clips.get((item.announcement, item.lang)),
    )


def _dispatched(
    journal: Journal | None, start: dt.date, days: int
) -> dict[tuple[str, str, str], tuple[str, dict[tuple[str, str], str]]]:
    """(date, slot, hamlet) -> (playlist id, {(announcement, lang): sha256}) of the live,
    uncancelled playlist journaled for it (the newest, if re-planned)."""
    if journal is None:
        return {}
    found: dict[tuple[str, str, str], tuple[str, dict[tuple[str, str], str]]] = {}
    last = start + dt.timedelta(days=min(max(days, 1), MAX_DAYS) - 1)
    for row in journal.dispatches_between(start, last):
        if row.cancelled_at is not None:
            continue
        clips = {
            (str(i.get("announcement")), str(i.get("lang"))): str(i.get("sha256"))
            for i in row.item_list()
        }
        found[(row.date, row.slot, row.hamlet)] = (row.id, clips)
    return found


def clip_known(journal: Journal, sha256: str, start: dt.date, last: dt.date) -> bool:
    """Whether a journaled playlist in the window names this clip (the console serves no other
    file from the audio store, so the store cannot be listed through it)."""
    return any(
        i.get("sha256") == sha256
        for row in journal.dispatches_between(start, last)
        for i in row.item_list()
    )


def bulletin_clips(journal: Journal, day: dt.date, slot: str, hamlet: str) -> list[str]:
    """The sha256 of every clip of the live, uncancelled playlist journaled for this hamlet's
    slot, in play order (the chimes included: the same audio the speakers get); [] if none."""
    found: list[str] = []
    for row in journal.dispatches_between(day, day):
        if row.slot == slot and row.hamlet == hamlet and row.cancelled_at is None:
            found = [str(i["sha256"]) for i in row.item_list() if i.get("sha256")]
    return found
