"""The scheduler feed: APScheduler jobs that only enqueue `SlotDue`, plus start-up catch-up.

A slot is due at `play_at - lead` and may still be dispatched until `expires_at`
(`play_at + catch_up`).
After a restart, a slot inside that window is enqueued at once (the dispatcher re-publishes it
idempotently if it was already sent); one whose window has passed without a dispatch is journaled
as skipped, with the reason, unless it closed before the journal's first record: a new install
did not miss the slots from before it existed.
After a reload, a slot the edit changed (its time, or what some hamlet hears) is enqueued at once
when its new window is open, or when it already went out and has not expired: the job for its new
publish time may lie in the past (a slot moved later on the day it aired), and a playlist already
on the nodes must not play at the old time. The dispatcher then decides each hamlet against the
journal (slotdecision.py): changed speech goes out, unchanged speech that aired does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, Protocol, TypeAlias

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from broadcastd.controller.dispatch import SlotDue
from broadcastd.plan.exercise import EXERCISE_SLOT, exercise_times, next_exercise
from broadcastd.plan.slotplan import build_plan, window

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from broadcastd.config import Config, LoadedConfig
    from broadcastd.journal.store import Journal
    from broadcastd.metrics import Metrics
    from broadcastd.models import Clip, PlanItem, SlotPlan

log = logging.getLogger(__name__)


class _Cache(Protocol):
    def cached(self, item: PlanItem) -> Clip | None: ...


def slot_times(
    config: Config, day: dt.date, slot: str
) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(publish_at, play_at, expires_at) of one slot on one date, tz-aware in the commune's zone."""
    s = config.slots[slot]
    return window(config, day, s.at, s.lead, s.catch_up)


class SlotFeed:
    """Owns the AsyncIOScheduler; its jobs put `SlotDue` on the dispatcher's queue, nothing else."""

    def __init__(
        self,
        config: Config,
        queue: asyncio.Queue[SlotDue],
        journal: Journal,
        metrics: Metrics,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self._queue = queue
        self._journal = journal
        self._metrics = metrics
        self._clock = clock
        self._scheduler: AsyncIOScheduler | None = None
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=self.config.commune.tz)
        self._add_jobs()
        self._scheduler.start()
        try:
            await self._stopped.wait()
        finally:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)

    def stop(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._stopped.set()

    def replace_config(self, config: Config) -> None:
        for gone in set(self.config.slots) - set(config.slots):
            with contextlib.suppress(KeyError):  # a slot removed by the edit has no next run
                self._metrics.next_slot_timestamp_seconds.remove(gone)
        self.config = config
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.remove_all_jobs()
            self._add_jobs()
        else:
            self._update_next()

    def replan(self, old: LoadedConfig, new: LoadedConfig) -> list[SlotDue]:
        """After a reload (`replace_config` done): enqueue each slot the edit changed that must
        be dispatched again now (see the module docstring)."""
        now = dt.datetime.fromtimestamp(self._clock(), tz=self.config.commune.tz)
        due: list[SlotDue] = []
        for offset in (-1, 0, 1):  # a window can span midnight
            day = now.date() + dt.timedelta(days=offset)
            before, after = _by_slot(build_plan(old, day)), _by_slot(build_plan(new, day))
            for name in self.config.slots:
                change = _change(before.get(name, {}), after.get(name, {}))
                publish_at, _, expires_at = slot_times(self.config, day, name)
                if change is None or now >= expires_at:
                    continue
                if publish_at <= now or self._journal.dispatches_for(day, name):
                    due.append(SlotDue(day, name, f"re-planned after reload: {change}"))
        for item in due:
            log.info("slot %s of %s %s", item.slot, item.date, item.reason)
            self._queue.put_nowait(item)
        return due

    def _add_jobs(self) -> None:
        if self._scheduler is None:
            return
        for name, slot in self.config.slots.items():
            self._add_job(name, slot.at, slot.lead, slot.catch_up)
        ex = self.config.exercise
        if ex is not None:
            # Daily at its publish time; `_due` enqueues only on the configured day of the month.
            self._add_job(EXERCISE_SLOT, ex.at, ex.lead, ex.catch_up)
        self._update_next()

    def _add_job(self, name: str, at: dt.time, lead: dt.timedelta, catch_up: dt.timedelta) -> None:
        """A daily job at the slot's publish time (`at - lead`) that enqueues `SlotDue(name)`."""
        if self._scheduler is None:
            return
        publish = dt.datetime.combine(dt.date(2000, 1, 3), at) - lead
        self._scheduler.add_job(
            self._due,
            CronTrigger(
                hour=publish.hour,
                minute=publish.minute,
                second=publish.second,
                timezone=self.config.commune.tz,
            ),
            args=[name],
            id=f"slot-{name}",
            # A job that fires late (loop busy, machine suspended) still counts while the slot
            # can be dispatched at all; coalesce so a backlog becomes one dispatch.
            misfire_grace_time=int((lead + catch_up).total_seconds()),
            coalesce=True,
            max_instances=1,
        )

    def _due(self, slot: str) -> None:
        """The job: enqueue, nothing more (a scheduler job that did work would block the loop)."""
        now = dt.datetime.fromtimestamp(self._clock(), tz=self.config.commune.tz)
        if slot == EXERCISE_SLOT and self.config.exercise is not None:
            play_date = (now + self.config.exercise.lead).date()
            if exercise_times(self.config, play_date) is not None:
                self._queue.put_nowait(SlotDue(play_date, slot, "scheduled exercise"))
            self._update_next()
            return
        play_date = (now + self.config.slots[slot].lead).date()
        self._queue.put_nowait(SlotDue(play_date, slot, "scheduled"))
        self._update_next()

    def _update_next(self) -> None:
        now = dt.datetime.fromtimestamp(self._clock(), tz=self.config.commune.tz)
        for name in self.config.slots:
            for offset in range(3):
                _, play_at, _ = slot_times(
                    self.config, now.date() + dt.timedelta(days=offset), name
                )
                if play_at > now:
                    self._metrics.next_slot_timestamp_seconds.labels(slot=name).set(
                        play_at.timestamp()
                    )
                    break
        upcoming = next_exercise(self.config, now)
        if upcoming is not None:
            self._metrics.next_slot_timestamp_seconds.labels(slot=EXERCISE_SLOT).set(
                upcoming.timestamp()
            )

    async def catch_up(self) -> list[SlotDue]:
        """At start-up: enqueue every slot inside its dispatch window; journal the missed ones."""
        now = dt.datetime.fromtimestamp(self._clock(), tz=self.config.commune.tz)
        first = self._journal.first_recorded()
        installed = now if first is None else dt.datetime.fromtimestamp(first, tz=now.tzinfo)
        due: list[SlotDue] = []
        for offset in (-1, 0, 1):
            day = now.date() + dt.timedelta(days=offset)
            for name in self.config.slots:
                publish_at, _, expires_at = slot_times(self.config, day, name)
                if publish_at <= now < expires_at:
                    due.append(SlotDue(day, name, "catch-up at start-up"))
                elif expires_at > installed and self._missed(day, name, expires_at, now):
                    reason = f"not dispatched: daemon was down until after {expires_at:%H:%M}"
                    log.warning("slot %s %s %s", day, name, reason)
                    self._journal.record_skip(day, name, "*", reason)
            times = exercise_times(self.config, day)
            if times is not None and times[0] <= now < times[2]:
                due.append(SlotDue(day, EXERCISE_SLOT, "exercise catch-up at start-up"))
        for item in due:
            self._queue.put_nowait(item)
        return due

    def _missed(self, day: dt.date, slot: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
        """A slot whose window closed in the last day with nothing dispatched and no skip
        journaled yet (a window can close after midnight: its day is then yesterday)."""
        if not expires_at <= now < expires_at + dt.timedelta(days=1):
            return False
        if self._journal.dispatches_for(day, slot):
            return False
        return not any(
            s.slot == slot and s.hamlet == "*" for s in self._journal.skips_between(day, day)
        )

    def mark_audio_state(self, plans: Iterable[SlotPlan], cache: _Cache) -> None:
        """Raise `slot_audio_not_ready{slot}` when a slot within `lead` still lacks audio."""
        now = dt.datetime.fromtimestamp(self._clock(), tz=self.config.commune.tz)
        missing: dict[str, bool] = dict.fromkeys(self.config.slots, False)
        for plan in plans:
            if plan.publish_at <= now < plan.play_at and any(
                cache.cached(i) is None for i in plan.items
            ):
                missing[plan.slot] = True
        for slot, bad in missing.items():
            self._metrics.slot_audio_not_ready.labels(slot=slot).set(1 if bad else 0)


# hamlet -> (play_at, items) of one slot on one day
_Heard: TypeAlias = "dict[str, tuple[dt.datetime, tuple[PlanItem, ...]]]"


def _by_slot(plans: Iterable[SlotPlan]) -> dict[str, _Heard]:
    out: dict[str, _Heard] = {}
    for plan in plans:
        if plan.items:
            out.setdefault(plan.slot, {})[plan.hamlet] = (plan.play_at, plan.items)
    return out


def _change(before: _Heard, after: _Heard) -> str | None:
    """What the edit changed in one slot of one day, in words; None if nothing anyone hears."""
    if before == after:
        return None
    parts: list[str] = []
    old_at, new_at = (min((at for at, _ in h.values()), default=None) for h in (before, after))
    if old_at is not None and new_at is not None and old_at != new_at:
        parts.append(f"moved from {old_at:%H:%M} to {new_at:%H:%M}")
    hamlets = before.keys() | after.keys()
    changed = sorted(h for h in hamlets if _items(before, h) != _items(after, h))
    if changed:
        parts.append(f"content changed for {', '.join(changed)}")
    return "; ".join(parts) or "timing changed"


def _items(heard: _Heard, hamlet: str) -> tuple[PlanItem, ...]:
    return heard[hamlet][1] if hamlet in heard else ()
