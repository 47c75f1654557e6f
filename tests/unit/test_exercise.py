"""Exercise plans, the exercise slot in the scheduler feed, and two-person approval rules."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING

import pytest
from support.communes import thu

from broadcastd.config import EXERCISE_NOTICE, load_config
from broadcastd.controller.approvals import ApprovalError, Approvals, check_operator
from broadcastd.controller.dispatch import SlotDue
from broadcastd.controller.requests import Announce
from broadcastd.controller.slotfeed import SlotFeed
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics
from broadcastd.plan.exercise import EXERCISE_SLOT, exercise_plans, next_exercise

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.config import Config

BASE = thu(hamlets=3)
FIRST_WED = dt.date(2026, 12, 2)


def config_with(tmp_path: Path, extra: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra, encoding="utf-8")
    return load_config(path, probe_media=False).config


def at(config: Config, day: dt.date, hh: int, mm: int) -> float:
    return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=config.commune.tz).timestamp()


def test_exercise_plans_start_with_the_spoken_notice_and_are_never_emergency(tmp_path):
    config = config_with(
        tmp_path,
        "exercise: {day: first-wed, at: '11:45', text: Diễn tập báo cháy, "
        "hamlets: [ban-a, ban-c], lead: 10m, catch_up: 5m}\n",
    )
    plans = exercise_plans(config, FIRST_WED)
    assert [p.hamlet for p in plans] == ["ban-a", "ban-c"]
    for plan in plans:
        assert plan.slot == EXERCISE_SLOT
        assert plan.play_at == dt.datetime(2026, 12, 2, 11, 45, tzinfo=config.commune.tz)
        assert plan.publish_at == plan.play_at - dt.timedelta(minutes=10)
        assert plan.expires_at == plan.play_at + dt.timedelta(minutes=5)
        assert [i.text for i in plan.items] == [EXERCISE_NOTICE, "Diễn tập báo cháy"]
        assert "thử nghiệm" in EXERCISE_NOTICE
        assert all(i.priority != "emergency" for i in plan.items)
    assert exercise_plans(config, FIRST_WED + dt.timedelta(days=7)) == []
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=config.commune.tz)  # just after this month's
    assert next_exercise(config, now) == dt.datetime(2027, 1, 6, 11, 45, tzinfo=config.commune.tz)


def test_no_exercise_section_no_exercise(tmp_path):
    config = config_with(tmp_path, "")
    assert exercise_plans(config, FIRST_WED) == []


async def test_feed_enqueues_the_exercise_only_on_its_day(tmp_path):
    config = config_with(tmp_path, "exercise: {day: first-wed, at: '11:45', lead: 30m}\n")
    now = [at(config, FIRST_WED, 11, 15)]
    queue: asyncio.Queue[SlotDue] = asyncio.Queue()
    journal = Journal.open(tmp_path / "j.sqlite3", clock=lambda: now[0])
    metrics = Metrics()
    try:
        feed = SlotFeed(config, queue, journal, metrics, clock=lambda: now[0])
        feed._due(EXERCISE_SLOT)  # what the daily job does at 11:15
        assert queue.get_nowait() == SlotDue(FIRST_WED, EXERCISE_SLOT, "scheduled exercise")
        now[0] = at(config, FIRST_WED + dt.timedelta(days=1), 11, 15)
        feed._due(EXERCISE_SLOT)
        assert queue.empty()
        next_ts = metrics.next_slot_timestamp_seconds.labels(slot=EXERCISE_SLOT)._value.get()
        assert next_ts == at(config, dt.date(2027, 1, 6), 11, 45)

        # start-up inside the exercise's window: it is caught up like any slot
        now[0] = at(config, FIRST_WED, 11, 50)
        due = await feed.catch_up()
        assert SlotDue(FIRST_WED, EXERCISE_SLOT, "exercise catch-up at start-up") in due
        now[0] = at(config, FIRST_WED, 12, 30)  # after play_at + catch_up (20m)
        assert all(d.slot != EXERCISE_SLOT for d in await feed.catch_up())
    finally:
        journal.close()


# -- two-person approval -----------------------------------------------------------------------

TWO = "emergency: {approvals: 2, operators: [an, binh, chi], request_ttl: 10m}\n"


def flood_warning(text: str = "Lũ quét") -> Announce:
    return Announce(
        text=text,
        lang=None,
        hamlets=None,
        priority="emergency",
        now=False,
        exercise=False,
        operator="an",
    )


def test_second_different_operator_approves(tmp_path):
    config = config_with(tmp_path, TWO)
    now = [1000.0]
    approvals = Approvals(lambda: now[0], ['{"id": "req-6", "operator": "chi"}'])
    req = approvals.open(config, "an", flood_warning())
    assert req.id == "req-7"
    assert [r.id for r in approvals.pending()] == ["req-7"]
    with pytest.raises(ApprovalError, match="issued by an: a second, different operator"):
        approvals.approve(config, "req-7", "an")
    with pytest.raises(ApprovalError, match="unknown operator 'mallory'"):
        approvals.approve(config, "req-7", "mallory")
    with pytest.raises(ApprovalError, match="pass --operator NAME"):
        approvals.approve(config, "req-7", None)
    approved = approvals.approve(config, "req-7", "binh")
    assert approved.request == flood_warning()
    with pytest.raises(ApprovalError, match="no pending emergency request 'req-7'"):
        approvals.approve(config, "req-7", "chi")  # approving twice publishes nothing twice


def test_an_expired_request_is_refused(tmp_path):
    config = config_with(tmp_path, TWO)
    now = [1000.0]
    approvals = Approvals(lambda: now[0])
    approvals.open(config, "an", flood_warning())
    now[0] += 600  # exactly request_ttl later
    assert approvals.pending() == []
    with pytest.raises(ApprovalError, match=r"expired at .* issue the emergency again"):
        approvals.approve(config, "req-1", "binh")
    with pytest.raises(ApprovalError, match="no pending"):
        approvals.approve(config, "req-1", "binh")


def test_withdrawn_request_cannot_be_approved(tmp_path):
    config = config_with(tmp_path, TWO)
    approvals = Approvals(lambda: 0.0)
    approvals.open(config, "an", flood_warning())
    assert approvals.withdraw("req-1") is not None
    with pytest.raises(ApprovalError, match="no pending"):
        approvals.approve(config, "req-1", "binh")


def test_operator_names_are_checked_only_when_configured(tmp_path):
    open_config = config_with(tmp_path, "")
    assert check_operator(open_config, None, required=False) is None
    assert check_operator(open_config, "anyone", required=False) == "anyone"
    config = config_with(tmp_path, TWO)
    assert check_operator(config, "chi", required=True) == "chi"
    with pytest.raises(ApprovalError, match=r"one of: an, binh, chi"):
        check_operator(config, "", required=True)
    with pytest.raises(ApprovalError, match="unknown operator"):
        check_operator(config, "dung", required=False)
