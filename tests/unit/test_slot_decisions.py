"""Each hamlet's decision when a slot is dispatched again (slotdecision.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from broadcastd import protocol
from broadcastd.controller.slotdecision import decide
from broadcastd.journal.store import DispatchRow
from broadcastd.models import Clip

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = dt.date(2026, 12, 7)
NOON = int(dt.datetime(2026, 12, 7, 11, 30, tzinfo=TZ).timestamp())
OLD, NEW, RESPOKEN = "a" * 64, "b" * 64, "c" * 64


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
