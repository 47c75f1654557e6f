"""Each hamlet's decision when a slot is dispatched again (slotdecision.py), and which edits make
the scheduler feed dispatch a slot again after a reload (SlotFeed.replan)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from support.communes import thu

from broadcastd import protocol
from broadcastd.config import load_config
from broadcastd.controller.slotdecision import decide
from broadcastd.controller.slotfeed import SlotFeed
from broadcastd.journal.store import DispatchRow, Journal
from broadcastd.metrics import Metrics
from broadcastd.models import Clip

if TYPE_CHECKING:
    from broadcastd.config import LoadedConfig
    from broadcastd.controller.dispatch import SlotDue

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = dt.date(2026, 12, 7)
NOON = int(dt.datetime(2026, 12, 7, 11, 30, tzinfo=TZ).timestamp())
OLD, NEW, RESPOKEN = "a" * 64, "b" * 64, "c" * 64
KEY = protocol.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def entry(sha: str, announcement: str = "ann-0") -> protocol.PlaylistItem:
    return protocol.PlaylistItem(sha, 100, 1, 1000, "Tin 0", "vi", announcement)


def clip(sha: str, *earlier: str) -> Clip:
    return Clip(sha, Path(f"/audio/{sha}.mp3"), 100, 1000, earlier)


def row(sha: str, play_at: int = NOON, *, cancelled_at: float | None = None) -> DispatchRow:
    items = json.dumps([{"sha256": sha, "announcement": "ann-0", "lang": "vi", "title": "Tin 0"}])
    return DispatchRow(
        "20261207-noon-ban-a-x", DAY.isoformat(), "noon", "ban-a", play_at, play_at + 1200,
        "normal", "live", 1, items, "", NOON - 1800.0, NOON - 1790.0, cancelled_at,
    )  # fmt: skip


def verdict(latest: DispatchRow | None, sha: str, *earlier: str, at: int, now: int) -> str:
    found = decide(latest, [entry(sha)], [clip(sha, *earlier)], at, now=now, tz=TZ)
    return f"{found.action}: {found.reason}"


def test_nothing_journaled_yet_is_a_new_playlist():
    assert verdict(None, OLD, at=NOON, now=NOON - 1800) == "new: new playlist"


def test_the_same_clips_at_the_same_time_stand_as_journaled():
    assert verdict(row(OLD), OLD, at=NOON, now=NOON + 60).startswith("keep: unchanged")


def test_unchanged_speech_moved_after_it_aired_is_not_sent_again():
    got = verdict(row(OLD), OLD, at=NOON + 120, now=NOON + 60)
    assert got == (
        "skip: content unchanged since 20261207-noon-ban-a-x aired at 2026-12-07 11:30:00+07:00;"
        " it plays once"
    )


def test_unchanged_speech_moved_before_it_aired_goes_out_at_the_new_time():
    got = verdict(row(OLD), OLD, at=NOON + 900, now=NOON - 600)
    assert got == (
        "new: moved from 2026-12-07 11:30:00+07:00 to 2026-12-07 11:45:00+07:00,"
        " superseding 20261207-noon-ban-a-x"
    )


def test_speech_spoken_again_by_the_preferred_engine_counts_as_unchanged():
    """A restart in the catch-up window after render-ahead replaced an espeak-ng clip with gTTS's
    must not play the slot a second time."""
    assert verdict(row(OLD), RESPOKEN, OLD, at=NOON, now=NOON + 60).startswith("skip: content")
    got = verdict(row(OLD), RESPOKEN, OLD, at=NOON, now=NOON - 600)
    assert got == "new: audio spoken again, superseding 20261207-noon-ban-a-x"


def test_changed_speech_goes_out_even_after_the_slot_aired():
    got = verdict(row(OLD), NEW, at=NOON + 120, now=NOON + 60)
    assert got == "new: content changed since 20261207-noon-ban-a-x"


def test_a_cancelled_playlist_is_not_brought_back_by_the_same_speech():
    cancelled = row(OLD, cancelled_at=NOON - 300.0)
    for at in (NOON, NOON + 600):
        got = verdict(cancelled, OLD, at=at, now=NOON - 60)
        assert got == (
            "skip: 20261207-noon-ban-a-x with this content was cancelled at"
            " 2026-12-07 11:25:00+07:00"
        )
    assert verdict(cancelled, NEW, at=NOON, now=NOON - 60).startswith("new: content changed")


ANNOUNCEMENTS = """announcements:
  - {id: ann-0, title: Tin 0, text: {vi: 'Tiêm phòng cho gia súc.'}, slots: [noon]}
  - {id: ann-1, title: Tin 1, text: {vi: 'Họp thôn tối nay.'}, slots: [noon], hamlets: [ban-a]}
"""


class Edit:
    """Xã Thử with two hamlets and a noon slot, loaded before and after an edit of its file."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "c.yaml"
        self.text = thu(hamlets=2, slots='noon: {at: "11:30", lead: 30m, catch_up: 20m}')
        self.text += ANNOUNCEMENTS
        self.path.write_text(self.text, encoding="utf-8")
        self.before = load_config(self.path, probe_media=False)

    def after(self, old: str, new: str) -> LoadedConfig:
        assert old in self.text
        self.path.write_text(self.text.replace(old, new), encoding="utf-8")
        return load_config(self.path, probe_media=False)


@pytest.fixture
def journal(tmp_path: Path):
    opened = Journal.open(tmp_path / "j.sqlite3")
    yield opened
    opened.close()


def feed_at(edit: Edit, journal: Journal, hh: int, mm: int) -> tuple[SlotFeed, Metrics]:
    now = dt.datetime.combine(DAY, dt.time(hh, mm), tzinfo=TZ).timestamp()
    metrics = Metrics()
    queue: asyncio.Queue[SlotDue] = asyncio.Queue()
    return SlotFeed(edit.before.config, queue, journal, metrics, clock=lambda: now), metrics


async def aired(journal: Journal) -> None:
    signed = protocol.seal(
        protocol.Playlist(
            commune="thu", hamlet="ban-a", id="20261207-noon-ban-a-x", slot="noon",
            play_at=NOON, expires_at=NOON + 1200, priority="normal", issued_at=NOON - 1800,
            items=(entry(OLD),), seq=1,
        ),
        KEY,
    )  # fmt: skip
    await journal.record_dispatch(signed)


async def test_a_slot_moved_later_after_it_aired_is_dispatched_again_at_once(tmp_path, journal):
    edit = Edit(tmp_path)
    await aired(journal)
    feed, metrics = feed_at(edit, journal, 11, 31)
    moved = edit.after('at: "11:30"', 'at: "11:32"')
    feed.replace_config(moved.config)
    due = feed.replan(edit.before, moved)
    assert [(d.date, d.slot, d.reason) for d in due] == [
        (DAY, "noon", "re-planned after reload: moved from 11:30 to 11:32")
    ]
    next_run = metrics.next_slot_timestamp_seconds.labels(slot="noon")._value.get()
    assert next_run == NOON + 120


async def test_a_content_edit_names_the_hamlets_it_changed(tmp_path, journal):
    edit = Edit(tmp_path)
    await aired(journal)
    feed, _ = feed_at(edit, journal, 11, 40)
    reworded = edit.after("Họp thôn tối nay.", "Họp thôn lúc tám giờ tối nay.")
    feed.replace_config(reworded.config)
    reasons = [d.reason for d in feed.replan(edit.before, reworded)]
    assert reasons == ["re-planned after reload: content changed for ban-a"]


async def test_edits_that_change_nothing_anyone_hears_re_plan_nothing(tmp_path, journal):
    edit = Edit(tmp_path)
    await aired(journal)
    feed, _ = feed_at(edit, journal, 11, 31)
    lead_only = edit.after("lead: 30m", "lead: 45m")
    feed.replace_config(lead_only.config)
    assert feed.replan(edit.before, lead_only) == []


async def test_a_slot_not_yet_sent_waits_for_its_job_and_an_expired_one_stays_closed(
    tmp_path, journal
):
    edit = Edit(tmp_path)
    early, _ = feed_at(edit, journal, 9, 0)  # before any publish time: the new job will fire
    moved = edit.after('at: "11:30"', 'at: "11:32"')
    early.replace_config(moved.config)
    assert early.replan(edit.before, moved) == []
    await aired(journal)
    late, _ = feed_at(edit, journal, 12, 0)  # the moved slot's window closed at 11:52
    late.replace_config(moved.config)
    assert late.replan(edit.before, moved) == []


async def test_a_removed_slot_loses_its_next_run_metric(tmp_path, journal):
    edit = Edit(tmp_path)
    feed, metrics = feed_at(edit, journal, 9, 0)
    feed.replace_config(edit.before.config)
    renamed = edit.after("noon", "trua").config
    feed.replace_config(renamed)
    (family,) = metrics.next_slot_timestamp_seconds.collect()
    assert [sample.labels["slot"] for sample in family.samples] == ["trua"]
