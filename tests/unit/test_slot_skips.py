"""Start-up catch-up journals a missed slot once, under the day it belonged to, and never one
from before the commune installed broadcastd (the journal's first record)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING

from support.communes import thu

from broadcastd.config import load_config
from broadcastd.controller.slotfeed import SlotFeed
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics

if TYPE_CHECKING:
    from broadcastd.controller.dispatch import SlotDue

CONFIG = thu(hamlets=1, slots='late: {at: "23:50", lead: 30m, catch_up: 20m}')
DAY = dt.date(2026, 11, 24)


async def test_a_window_closing_after_midnight_is_journaled_once_under_its_own_day(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path, probe_media=False).config
    tz = config.commune.tz
    # 00:20 the next day: the 23:50 slot's window (until 00:10) closed while the daemon was down
    now = [dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 20), tzinfo=tz).timestamp()]
    journal = Journal.open(tmp_path / "j.sqlite3", clock=lambda: now[0])
    queue: asyncio.Queue[SlotDue] = asyncio.Queue()
    try:
        installed, now[0] = now[0], now[0] - 7 * 86400
        journal.record_event("start", "{}")  # the daemon first ran a week ago
        await journal.flush()
        now[0] = installed
        feed = SlotFeed(config, queue, journal, Metrics(), clock=lambda: now[0])
        assert await feed.catch_up() == []
        await journal.flush()
        await feed.catch_up()  # a second start-up the same night: no second row
        await journal.flush()
        skips = journal.skips_between(DAY, DAY + dt.timedelta(days=1))
        assert [(s.date, s.slot, s.hamlet) for s in skips] == [(DAY.isoformat(), "late", "*")]
        assert skips[0].reason == "not dispatched: daemon was down until after 00:10"
        now[0] += 2 * 86400  # two nights later: only the window that closed in the last day
        await feed.catch_up()
        await journal.flush()
        dates = [s.date for s in journal.skips_between(DAY, DAY + dt.timedelta(days=3))]
        assert dates == [DAY.isoformat(), (DAY + dt.timedelta(days=2)).isoformat()]
    finally:
        journal.close()


async def test_a_new_install_does_not_report_the_slots_from_before_it_existed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path, probe_media=False).config
    tz = config.commune.tz
    now = [dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 20), tzinfo=tz).timestamp()]
    journal = Journal.open(tmp_path / "j.sqlite3", clock=lambda: now[0])
    queue: asyncio.Queue[SlotDue] = asyncio.Queue()
    try:
        feed = SlotFeed(config, queue, journal, Metrics(), clock=lambda: now[0])
        assert await feed.catch_up() == []  # an empty journal: the first start, right now
        journal.record_event("start", "{}")  # what the daemon journals after catch-up
        await journal.flush()
        now[0] += 3600  # restarted an hour later: the 23:50 slot still predates the install
        await feed.catch_up()
        await journal.flush()
        assert journal.skips_between(DAY, DAY + dt.timedelta(days=1)) == []
        now[0] += 86400  # the next night's slot closed after the install: that one was missed
        await feed.catch_up()
        await journal.flush()
        skips = journal.skips_between(DAY, DAY + dt.timedelta(days=2))
        assert [(s.date, s.slot) for s in skips] == [
            ((DAY + dt.timedelta(days=1)).isoformat(), "late")
        ]
    finally:
        journal.close()
