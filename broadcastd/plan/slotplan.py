"""The plan: which announcement plays, in which language, in which slot and hamlet, on which date.

Pure functions of a loaded config (the frozen `Config` and its measured clip lengths): no I/O, no
clock (the caller passes the dates).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from broadcastd.config.fields import WEEKDAYS
from broadcastd.config.yamlsource import YamlPath, dotted, problem_at
from broadcastd.models import PRIORITY_RANK, ItemKind, PlanItem, SlotPlan

if TYPE_CHECKING:
    from collections.abc import Iterable

    from broadcastd.config import Announcement, Config, Hamlet, LoadedConfig, Slot
    from broadcastd.config.yamlsource import Loc
    from broadcastd.errors import Problem

# Speaking rate used to estimate a TTS clip before it is rendered. Measured: espeak-ng `-v vi`
# speaks a 176-character Vietnamese bulletin sentence in 9.2 s (19 chars/s); gTTS `vi`, the first
# engine, is slower and pauses at punctuation. 14 chars/s errs long, so what fits in the plan fits
# on air.
TTS_CHARS_PER_SECOND = 14.0
MIN_TTS_SECONDS = 1.0


def estimate_seconds(text: str) -> float:
    """Estimated spoken length of `text` in Vietnamese TTS."""
    return max(MIN_TTS_SECONDS, len(text.strip()) / TTS_CHARS_PER_SECOND)


def build_plan(
    loaded: LoadedConfig, start: dt.date, days: int = 1, hamlet: str | None = None
) -> list[SlotPlan]:
    """For each date, slot (by time of day) and hamlet, the ordered items to play.

    One `SlotPlan` per (date, slot, hamlet), also when it has nothing to play (`items == ()`).
    """
    config = loaded.config
    slots = sorted(config.slots.items(), key=lambda kv: kv[1].at)
    hamlets = [h for h in config.hamlets if hamlet is None or h.id == hamlet]
    plans: list[SlotPlan] = []
    for offset in range(max(0, days)):
        day = start + dt.timedelta(days=offset)
        for slot_id, slot in slots:
            anns = _announcements_for(config, day, slot_id)
            plans.extend(_slot_plan(loaded, day, slot_id, slot, h, anns) for h in hamlets)
    return plans


def _announcements_for(config: Config, day: dt.date, slot_id: str) -> list[Announcement]:
    """Announcements active in this slot on `day`, in play order: priority, then config order."""
    active = [
        (PRIORITY_RANK[a.priority], i, a)
        for i, a in enumerate(config.announcements)
        if slot_id in a.slots and a.active_on(day)
    ]
    return [a for _, _, a in sorted(active, key=lambda t: (t[0], t[1]))]


def items_for(loaded: LoadedConfig, ann: Announcement, hamlet: Hamlet) -> list[PlanItem]:
    """The language variants of `ann` that `hamlet` hears, in the hamlet's language order.

    A recording is preferred over TTS: a person speaking beats a synthetic voice. A language the
    announcement has no content for is skipped.
    """
    items: list[PlanItem] = []
    for lang in hamlet.languages:
        if lang in ann.audio:
            path = ann.audio[lang]
            kind: ItemKind = "recording"
            seconds, text, recording = loaded.clip_seconds(path), None, path
        elif lang in ann.text:
            kind, recording = "tts", None
            text = ann.text[lang]
            seconds = estimate_seconds(text)
        else:
            continue
        items.append(
            PlanItem(
                announcement=ann.id,
                title=ann.title,
                category=ann.category,
                lang=lang,
                kind=kind,
                priority=ann.priority,
                duration_s=seconds,
                text=text,
                recording=recording,
            )
        )
    return items


def on_air_seconds(loaded: LoadedConfig, items: Iterable[PlanItem]) -> float:
    """How long a slot with these items lasts: chimes, items, and `audio.gap` between them all."""
    config = loaded.config
    parts = [i.duration_s for i in items]
    if not parts:
        return 0.0
    parts += [loaded.clip_seconds(c) for c in (config.audio.intro, config.audio.outro) if c]
    return sum(parts) + config.audio.gap.total_seconds() * (len(parts) - 1)


def window(
    config: Config, day: dt.date, at: dt.time, lead: dt.timedelta, catch_up: dt.timedelta
) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(publish_at, play_at, expires_at) of something playing at `at` on `day`, tz-aware in the
    commune's zone: published `lead` before, playable until `catch_up` after."""
    play_at = dt.datetime.combine(day, at, tzinfo=config.commune.tz)
    return play_at - lead, play_at, play_at + catch_up


def _slot_plan(  # noqa: PLR0913, PLR0917 - one call site; a parameter object would only rename these
    loaded: LoadedConfig,
    day: dt.date,
    slot_id: str,
    slot: Slot,
    hamlet: Hamlet,
    anns: list[Announcement],
) -> SlotPlan:
    items = [item for a in anns if a.targets(hamlet.id) for item in items_for(loaded, a, hamlet)]
    budget = slot.max_duration.total_seconds()
    dropped: list[PlanItem] = []
    # Items are in play order, so the last non-emergency item is the lowest-priority, latest one.
    # An emergency is never dropped for time.
    while on_air_seconds(loaded, items) > budget:
        victim = next(
            (k for k in range(len(items) - 1, -1, -1) if items[k].priority != "emergency"), None
        )
        if victim is None:
            break
        dropped.insert(0, items.pop(victim))
    publish_at, play_at, expires_at = window(loaded.config, day, slot.at, slot.lead, slot.catch_up)
    return SlotPlan(
        date=day,
        slot=slot_id,
        hamlet=hamlet.id,
        play_at=play_at,
        expires_at=expires_at,
        publish_at=publish_at,
        items=tuple(items),
        dropped=tuple(dropped),
    )


# --- warnings --------------------------------------------------------------------------------


def plan_warnings(loaded: LoadedConfig, today: dt.date) -> list[Problem]:
    """What is valid but probably not what staff meant: over-long slots, unheard announcements,
    hamlets with nothing to hear. Each names the place in the YAML to look at."""
    return loaded.relabel(
        [
            *_overlong_slots(loaded, today),
            *_unheard_announcements(loaded, today),
            *_silent_hamlets(loaded, today),
        ]
    )


def _warn(loc: Loc, path: YamlPath, message: str, *value: object) -> Problem:
    return problem_at(loc, dotted(path), message, *value)


def _sample_days(config: Config, today: dt.date) -> list[dt.date]:
    """Days on which every distinct plan from `today` on occurs at least once.

    The set of active announcements only changes at window edges (from, until + 1) and with the
    weekday, so a week starting at `today` and at each future edge covers every case.
    """
    edges = {today}
    for a in config.announcements:
        if a.from_ is not None:
            edges.add(a.from_)
        if a.until is not None:
            edges.add(a.until + dt.timedelta(days=1))
    return sorted({e + dt.timedelta(days=k) for e in edges if e >= today for k in range(7)})


def _overlong_slots(loaded: LoadedConfig, today: dt.date) -> list[Problem]:
    config = loaded.config
    problems: list[Problem] = []
    worst: dict[str, tuple[dt.date, str, float, int]] = {}
    for day in _sample_days(config, today):
        for plan in build_plan(loaded, day):
            if not plan.dropped or plan.slot in worst:
                continue
            seconds = on_air_seconds(loaded, (*plan.items, *plan.dropped))
            worst[plan.slot] = (day, plan.hamlet, seconds, len(plan.dropped))
    for slot_id, (day, hamlet_id, seconds, n) in worst.items():
        path: YamlPath = ("slots", slot_id, "max_duration")
        limit = _mmss(config.slots[slot_id].max_duration.total_seconds())
        problems.append(
            _warn(
                loaded.where(path),
                path,
                f"planned content exceeds {limit} on {day} in {hamlet_id}; "
                f"{n} item(s) will be dropped",
                _mmss(seconds),
            )
        )
    return problems


def _mmss(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s"


def _unheard_announcements(loaded: LoadedConfig, today: dt.date) -> list[Problem]:
    config = loaded.config
    problems: list[Problem] = []
    for i, a in enumerate(config.announcements):
        path: YamlPath = ("announcements", i)
        reason, value = _why_unheard(config, a, today)
        if reason:
            problems.append(
                _warn(loaded.where((*path, "id")), path, f"reaches no hamlet: {reason}", value)
            )
    return problems


def _why_unheard(config: Config, a: Announcement, today: dt.date) -> tuple[str, object]:
    if a.until is not None and a.until < today:
        return f"its window ended before today ({today})", str(a.until)
    first = max(today, a.from_) if a.from_ is not None else today
    window = [first + dt.timedelta(days=k) for k in range(7)]
    if a.until is not None:
        window = [d for d in window if d <= a.until]
    if not any(WEEKDAYS[d.weekday()] in a.days for d in window):
        return "none of its days falls inside its from/until window", list(a.days)
    targets = [h for h in config.hamlets if a.targets(h.id)]
    if not any(set(h.languages) & a.languages for h in targets):
        return "no targeted hamlet speaks its languages", sorted(a.languages)
    return "", None


def _silent_hamlets(loaded: LoadedConfig, today: dt.date) -> list[Problem]:
    config = loaded.config
    problems: list[Problem] = []
    current = [a for a in config.announcements if a.until is None or a.until >= today]
    for i, h in enumerate(config.hamlets):
        if not any(a.targets(h.id) and set(h.languages) & a.languages for a in current):
            path: YamlPath = ("hamlets", i, "languages")
            problems.append(
                _warn(
                    loaded.where(path),
                    path,
                    "no current announcement has content in this hamlet's languages",
                    list(h.languages),
                )
            )
    return problems


__all__ = [
    "MIN_TTS_SECONDS",
    "TTS_CHARS_PER_SECOND",
    "build_plan",
    "estimate_seconds",
    "items_for",
    "on_air_seconds",
    "plan_warnings",
]
