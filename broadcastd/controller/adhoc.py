"""What an ad-hoc announcement plays where: one SlotPlan per hamlet that hears something.

Each hamlet hears it as it hears a configured announcement: in each of its languages, in its
order, the recording where one was sent and the text in the text's language. A hamlet none of
whose languages has either hears the text (a text-only announcement has always gone to every
hamlet asked for); without text it hears nothing, and the reply names it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.controller.requests import RequestError
from broadcastd.models import PlanItem, SlotPlan
from broadcastd.plan.exercise import EXERCISE_SLOT, notice_item
from broadcastd.plan.slotplan import estimate_seconds

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from broadcastd.config import Config
    from broadcastd.controller.requests import Announce

ADHOC_SLOT = "announce"
RECORDED_TITLE = "Thông báo ghi âm"  # a recording's title when no text says what it is about


@dataclass(frozen=True, slots=True)
class Adhoc:
    id: str  # `announce-N`: what `cancel` takes
    plans: list[SlotPlan]
    heard: dict[str, list[str]]  # hamlet -> the languages it hears, in order
    silent: list[str]  # hamlets asked for that hear nothing
    play_at: dt.datetime


def adhoc_plans(
    config: Config, request: Announce, hamlets: Sequence[str], *, number: int, now: dt.datetime
) -> Adhoc:
    """The plans of ad-hoc announcement `announce-{number}` for `hamlets`, issued at `now`."""
    priority, exercise = request.priority, request.exercise
    if request.now or priority == "emergency":
        play_at, catch_up = now, max(s.catch_up for s in config.slots.values())
    else:
        play_at, catch_up = next_slot(config, now)
    announcement = f"announce-{number}"
    lang = request.lang or config.commune.default_language
    category = "announcement" if priority != "emergency" else "emergency"
    text = None
    if request.text:
        text = PlanItem(
            announcement=announcement,
            title=request.text[:60],
            category=category,
            lang=lang,
            kind="tts",
            priority=priority,
            duration_s=estimate_seconds(request.text),
            text=request.text,
        )
    title = request.text[:60] or RECORDED_TITLE
    recorded = {r.lang: r.item(announcement, title, priority) for r in request.recordings}
    # Each ad-hoc announcement is its own slot: two warnings issued seconds apart must not
    # supersede each other on a node that has not finished fetching the first.
    kind = EXERCISE_SLOT if exercise else ADHOC_SLOT if priority != "emergency" else "emergency"
    plans, heard, silent = [], {}, []
    for hamlet in hamlets:
        items = hamlet_items(config.hamlet(hamlet).languages, text, recorded)
        if not items:
            silent.append(hamlet)
            continue
        heard[hamlet] = [i.lang for i in items]
        # An exercise says so first, before anything else is heard.
        head = (notice_item(lang),) if exercise else ()
        plans.append(
            SlotPlan(
                date=play_at.date(),
                slot=f"{kind}-{number}",
                hamlet=hamlet,
                play_at=play_at,
                expires_at=play_at + catch_up,
                publish_at=now,
                items=head + items,
            )
        )
    return Adhoc(announcement, plans, heard, silent, play_at)


def hamlet_items(
    languages: Sequence[str], text: PlanItem | None, recorded: Mapping[str, PlanItem]
) -> tuple[PlanItem, ...]:
    """What a hamlet speaking `languages` (in play order) hears of one announcement."""
    items: list[PlanItem] = []
    for lang in languages:
        if lang in recorded:
            items.append(recorded[lang])
        elif text is not None and lang == text.lang:
            items.append(text)
    if not items and text is not None:
        items.append(text)
    return tuple(items)


def check_languages(config: Config, hamlets: Sequence[str], langs: Sequence[str]) -> None:
    """RequestError unless each recording's language is spoken in one of `hamlets`."""
    spoken = {h.id: h.languages for h in config.hamlets}
    known = sorted({lang for languages in spoken.values() for lang in languages})
    for lang in langs:
        if lang not in known:
            raise RequestError(
                f"no hamlet speaks {lang!r}: a recording's language must be one of a hamlet's"
                f" languages (this commune's: {', '.join(known)})"
            )
        if not any(lang in spoken[h] for h in hamlets):
            raise RequestError(
                f"none of the hamlets asked for ({', '.join(hamlets)}) speaks {lang!r}"
            )


def next_slot(config: Config, now: dt.datetime) -> tuple[dt.datetime, dt.timedelta]:
    """The next configured slot's time after `now`, and its catch-up."""
    best: tuple[dt.datetime, dt.timedelta] | None = None
    for offset in (0, 1):
        day = now.date() + dt.timedelta(days=offset)
        for slot in config.slots.values():
            at = dt.datetime.combine(day, slot.at, tzinfo=config.commune.tz)
            if at > now and (best is None or at < best[0]):
                best = (at, slot.catch_up)
    if best is None:  # unreachable: a config has at least one slot, so tomorrow has one
        raise RequestError("no slot is configured")
    return best
