"""Exercises: the monthly exercise slot and the spoken "this is a test" notice.

An exercise is published with `status: exercise`, starts with `EXERCISE_NOTICE` and is never
`emergency` priority, so no speaker lets it cut into a bulletin and nobody mistakes it for a
real alert (Hawaii 2018: live and test alerts shared one screen).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from broadcastd.config import EXERCISE_NOTICE
from broadcastd.models import PlanItem, SlotPlan
from broadcastd.plan.slotplan import estimate_seconds, window

if TYPE_CHECKING:
    from broadcastd.config import Config

EXERCISE_SLOT = "exercise"
EXERCISE_PRIORITY = "priority"  # above the daily bulletin, never an emergency


def notice_item(lang: str) -> PlanItem:
    """The clip every exercise starts with: "Đây là tin thử nghiệm." (this is a test)."""
    return PlanItem(
        announcement="exercise-notice",
        title="Tin thử nghiệm",
        category="exercise",
        lang=lang,
        kind="tts",
        priority=EXERCISE_PRIORITY,
        duration_s=estimate_seconds(EXERCISE_NOTICE),
        text=EXERCISE_NOTICE,
    )


def exercise_times(
    config: Config, day: dt.date
) -> tuple[dt.datetime, dt.datetime, dt.datetime] | None:
    """(publish_at, play_at, expires_at) of the exercise on `day`, or None if none falls then."""
    ex = config.exercise
    if ex is None or not ex.occurs_on(day):
        return None
    return window(config, day, ex.at, ex.lead, ex.catch_up)


def exercise_plans(config: Config, day: dt.date) -> list[SlotPlan]:
    """One plan per targeted hamlet: the notice, then the configured exercise text."""
    ex = config.exercise
    times = exercise_times(config, day)
    if ex is None or times is None:
        return []
    publish_at, play_at, expires_at = times
    body = PlanItem(
        announcement=f"exercise-{day:%Y%m}",
        title=ex.text[:60],
        category="exercise",
        lang=ex.lang,
        kind="tts",
        priority=EXERCISE_PRIORITY,
        duration_s=estimate_seconds(ex.text),
        text=ex.text,
    )
    return [
        SlotPlan(
            date=day,
            slot=EXERCISE_SLOT,
            hamlet=h.id,
            play_at=play_at,
            expires_at=expires_at,
            publish_at=publish_at,
            items=(notice_item(ex.lang), body),
        )
        for h in config.hamlets
        if ex.targets(h.id)
    ]


def next_exercise(config: Config, now: dt.datetime, *, days: int = 62) -> dt.datetime | None:
    """The next exercise play_at after `now`, looking `days` ahead (for the next-slot metric)."""
    for offset in range(days):
        times = exercise_times(config, now.date() + dt.timedelta(days=offset))
        if times is not None and times[1] > now:
            return times[1]
    return None
