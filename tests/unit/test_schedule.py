"""build_plan and plan_warnings against hand-computed expectations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broadcastd.config import LoadedConfig, load_config
from broadcastd.plan.slotplan import build_plan, estimate_seconds, plan_warnings

GOOD = Path(__file__).parent.parent / "data" / "good"
RECORDINGS = Path(__file__).parent.parent.parent / "audio" / "recordings"
MONDAY = dt.date(2026, 11, 30)
HCM = ZoneInfo("Asia/Ho_Chi_Minh")

# What tests/data/good/monday.yaml plays on Monday 2026-11-30, worked out by reading the file:
# slots by time of day (noon before afternoon although the file lists afternoon first); within a
# slot emergency, then priority, then normal, each in config order; within an announcement the
# hamlet's language order; a language without content is skipped.
MONDAY_PLAN: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("noon", "ban-a"): [
        ("weekly", "vi", "tts"),
        ("weekly", "dao", "recording"),
        ("dao-only", "dao", "recording"),
    ],
    ("noon", "ban-b"): [("weekly", "vi", "tts")],
    ("noon", "ban-c"): [("landslide", "vi", "tts"), ("weekly", "vi", "tts")],
    ("afternoon", "ban-a"): [
        ("weekly", "vi", "tts"),
        ("weekly", "dao", "recording"),
        ("last-day", "vi", "tts"),
    ],
    ("afternoon", "ban-b"): [
        ("insurance", "vi", "tts"),
        ("weekly", "vi", "tts"),
        ("last-day", "vi", "tts"),
    ],
    ("afternoon", "ban-c"): [
        ("insurance", "tay", "recording"),
        ("insurance", "vi", "tts"),
        ("weekly", "vi", "tts"),
        ("last-day", "vi", "tts"),
    ],
}


@pytest.fixture(scope="module")
def monday() -> LoadedConfig:
    return load_config(GOOD / "monday.yaml")


def test_monday_plan_matches_the_hand_computed_one(monday: LoadedConfig) -> None:
    plans = build_plan(monday, MONDAY)
    got = [((p.slot, p.hamlet), [(i.announcement, i.lang, i.kind) for i in p.items]) for p in plans]
    assert got == list(MONDAY_PLAN.items())
    assert all(p.dropped == () for p in plans)


def test_times_are_local_and_follow_lead_and_catch_up(monday: LoadedConfig) -> None:
    noon, *_ = build_plan(monday, MONDAY, hamlet="ban-b")
    assert noon.play_at == dt.datetime(2026, 11, 30, 11, 30, tzinfo=HCM)
    assert noon.play_at.utcoffset() == dt.timedelta(hours=7)
    assert noon.publish_at == dt.datetime(2026, 11, 30, 10, 45, tzinfo=HCM)  # lead 45m
    assert noon.expires_at == dt.datetime(2026, 11, 30, 11, 40, tzinfo=HCM)  # catch_up 10m


def test_durations_recording_is_measured_tts_is_estimated(monday: LoadedConfig) -> None:
    plan = build_plan(monday, MONDAY, hamlet="ban-a")[0]
    tts, rec, _ = plan.items
    text = "Thông báo tiêm phòng cho gia súc, gia cầm tại nhà văn hóa thôn."
    assert tts.text == text
    assert tts.duration_s == pytest.approx(len(text) / 14)
    assert rec.recording == (RECORDINGS / "vaccine-dao.ogg").absolute()
    assert rec.duration_s == pytest.approx(4.48, abs=0.05)  # ffprobe of the real clip


def test_hamlet_filter_and_days(monday: LoadedConfig) -> None:
    plans = build_plan(monday, MONDAY, days=2, hamlet="ban-c")
    assert [(p.date, p.slot) for p in plans] == [
        (MONDAY, "noon"),
        (MONDAY, "afternoon"),
        (dt.date(2026, 12, 1), "noon"),
        (dt.date(2026, 12, 1), "afternoon"),
    ]
    # Tuesday in Bản C: `tuesdays` (both slots), `starts-tuesday` (noon), insurance (afternoon).
    assert [[(i.announcement, i.lang) for i in p.items] for p in plans[2:]] == [
        [("starts-tuesday", "vi"), ("tuesdays", "vi")],
        [("insurance", "tay"), ("insurance", "vi"), ("tuesdays", "vi")],
    ]


def test_estimate_rate() -> None:
    assert estimate_seconds("x" * 140) == pytest.approx(10.0)
    assert estimate_seconds("Hi") == 1.0  # never shorter than a second


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        'commune: {id: thu, name: "Xã Thử"}\n'
        "signing: {private_key_file: key}\n"
        "state_dir: state\n"
        "audio: {gap: 2s}\n" + body,
        encoding="utf-8",
    )
    return path


def test_overlong_slot_drops_lowest_priority_latest_items(tmp_path: Path) -> None:
    text = "a" * 280  # 20 s each at 14 chars/s
    anns = "".join(
        f"  - {{id: {aid}, title: T, text: {{vi: {text}}}, slots: [noon], priority: {prio}}}\n"
        for aid, prio in [
            ("n1", "normal"),
            ("p1", "priority"),
            ("n2", "normal"),
            ("e1", "emergency"),
        ]
    )
    config = load_config(
        _write(
            tmp_path,
            'slots: {noon: {at: "11:30", max_duration: 45s}}\n'
            "hamlets: [{id: h, name: H, households: 1}]\n"
            f"announcements:\n{anns}",
        )
    )
    (plan,) = build_plan(config, MONDAY)
    # Order e1, p1, n1, n2: 4 x 20 s + 3 gaps of 2 s = 86 s; without n2 64 s, without n1 42 s.
    assert [i.announcement for i in plan.items] == ["e1", "p1"]
    assert [i.announcement for i in plan.dropped] == ["n1", "n2"]
    (warning,) = plan_warnings(config, MONDAY)
    assert warning.path == "slots.noon.max_duration"
    assert (warning.file.name, warning.line) == ("c.yaml", 5)
    assert (
        warning.message
        == "planned content exceeds 0m45s on 2026-11-30 in h; 2 item(s) will be dropped"
    )
    assert warning.value == "1m26s"


def test_emergency_is_never_dropped(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            'slots: {noon: {at: "11:30", max_duration: 5s}}\n'
            "hamlets: [{id: h, name: H, households: 1}]\n"
            f"announcements:\n  - {{id: e1, title: T, text: {{vi: {'a' * 280}}}, slots: [noon], "
            "priority: emergency}\n",
        )
    )
    (plan,) = build_plan(config, MONDAY)
    assert [i.announcement for i in plan.items] == ["e1"]


def test_warnings_name_unheard_announcements_and_silent_hamlets(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            'slots: {noon: {at: "11:30"}}\n'
            "hamlets:\n"
            "  - {id: h-vi, name: A, households: 1}\n"
            "  - {id: h-dao, name: B, households: 1, languages: [dao]}\n"
            "announcements:\n"
            "  - {id: ok, title: T, text: {vi: x}, slots: [noon]}\n"
            "  - {id: past, title: T, text: {vi: x}, slots: [noon], until: 2026-11-01}\n"
            "  - {id: no-day, title: T, text: {vi: x}, slots: [noon], days: [sun],"
            " from: 2026-12-01, until: 2026-12-04}\n"
            "  - {id: wrong-lang, title: T, text: {vi: x}, slots: [noon], hamlets: [h-dao]}\n",
        )
    )
    got = [(w.line, w.col, w.path, w.message, w.value) for w in plan_warnings(config, MONDAY)]
    assert got == [
        (
            11,
            10,
            "announcements[1]",
            "reaches no hamlet: its window ended before today (2026-11-30)",
            "2026-11-01",
        ),
        (
            12,
            10,
            "announcements[2]",
            "reaches no hamlet: none of its days falls inside its from/until window",
            ["sun"],
        ),
        (
            13,
            10,
            "announcements[3]",
            "reaches no hamlet: no targeted hamlet speaks its languages",
            ["vi"],
        ),
        (
            8,
            52,
            "hamlets[1].languages",
            "no current announcement has content in this hamlet's languages",
            ["dao"],
        ),
    ]
