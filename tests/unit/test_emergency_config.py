"""The `exercise` and `emergency` config sections: defaults, the example commune, and every
mistake reported at its exact line, through `broadcastd check` (exit 78, no traceback)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from support.communes import thu

from broadcastd.cli.main import run
from broadcastd.config import DEFAULT_CORRECTION, load_config

ROOT = Path(__file__).parent.parent.parent

BASE = thu(hamlets=2)


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra, encoding="utf-8")
    return path


def check(tmp_path: Path, extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = run(["check", "-c", str(write(tmp_path, extra))])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line.split("c.yaml:", 1)[1] for line in err.splitlines() if "c.yaml:" in line]


def test_defaults_are_one_person_no_exercise(tmp_path):
    config = load_config(write(tmp_path, ""), probe_media=False).config
    assert config.exercise is None
    assert config.emergency.approvals == 1
    assert config.emergency.operators == ()
    assert config.emergency.request_ttl == dt.timedelta(minutes=10)
    assert config.emergency.correction == DEFAULT_CORRECTION


def test_full_sections_load(tmp_path):
    extra = (
        "exercise: {day: last-fri, at: '11:45', text: Tin diễn tập, hamlets: [ban-b]}\n"
        "emergency:\n"
        "  approvals: 2\n"
        "  operators: [an, binh]\n"
        "  request_ttl: 5m\n"
        "  correction: Nhầm lẫn, xin lỗi bà con.\n"
    )
    config = load_config(write(tmp_path, extra), probe_media=False).config
    assert config.exercise is not None
    assert config.exercise.at == dt.time(11, 45)
    assert config.exercise.hamlets == ("ban-b",)
    assert config.emergency.operators == ("an", "binh")
    assert config.emergency.request_ttl == dt.timedelta(minutes=5)
    assert config.emergency.correction == "Nhầm lẫn, xin lỗi bà con."


def test_the_example_commune_has_both_sections():
    config = load_config(ROOT / "config" / "sang-moc.yaml", probe_media=False).config
    assert config.exercise is not None
    assert config.exercise.day == "first-wed"
    assert "nhầm lẫn" in config.emergency.correction


@pytest.mark.parametrize(
    ("spec", "dates", "not_dates"),
    [
        # November 2026 starts on a Sunday: first Wed is the 4th, last Fri the 27th.
        ("first-wed", ["2026-11-04", "2026-12-02"], ["2026-11-11", "2026-11-03"]),
        ("second-mon", ["2026-11-09"], ["2026-11-02", "2026-11-16"]),
        ("fourth-sun", ["2026-11-22"], ["2026-11-29"]),
        ("last-fri", ["2026-11-27", "2027-02-26"], ["2026-11-20"]),
        ("last-sun", ["2026-11-29"], ["2026-11-22"]),
    ],
)
def test_exercise_day_falls_on_the_named_weekday_of_the_month(tmp_path, spec, dates, not_dates):
    config = load_config(write(tmp_path, f"exercise: {{day: {spec}, at: '11:45'}}\n")).config
    assert config.exercise is not None
    for d in dates:
        assert config.exercise.occurs_on(dt.date.fromisoformat(d)), d
    for d in not_dates:
        assert not config.exercise.occurs_on(dt.date.fromisoformat(d)), d
    # exactly once in each of twelve months
    days = [dt.date(2027, 1, 1) + dt.timedelta(days=i) for i in range(365)]
    per_month = {
        m: sum(1 for d in days if d.month == m and config.exercise.occurs_on(d))
        for m in range(1, 13)
    }
    assert set(per_month.values()) == {1}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "exercise: {day: fifth-wed, at: '11:45'}\n",
            (
                "10:17: exercise.day: expected an ordinal weekday of the month such as "
                "first-wed or last-fri "
                "(first|second|third|fourth|last + -mon|tue|wed|thu|fri|sat|sun), "
                "got: 'fifth-wed'"
            ),
        ),
        (
            "exercise:\n  day: first-wed\n  at: '25:00'\n",
            (
                "12:7: exercise.at: the hour is out of range: expected a time of day from 00:00 to "
                "23:59, got: '25:00'"
            ),
        ),
        (
            "exercise: {day: first-wed, at: '11:45', hamlets: [ban-a, ban-z]}\n",
            "10:58: exercise.hamlets[1]: unknown hamlet id (defined: ban-a, ban-b), got: 'ban-z'",
        ),
        (
            "exercise: {day: first-wed, at: '11:45', lang: dao}\n",
            (
                "10:47: exercise.lang: the exercise is spoken by TTS: use a language a TTS engine "
                "speaks, got: 'dao'"
            ),
        ),
        (
            "exercise: {day: first-wed, at: '11:45', colour: red}\n",
            (
                "10:41: exercise.colour: unknown field (valid here: day, at, text, lang, hamlets, "
                "lead, catch_up), got: 'colour'"
            ),
        ),
        (
            "emergency: {approvals: 3}\n",
            "10:24: emergency.approvals: input should be 1 or 2, got: 3",
        ),
        (
            "emergency:\n  approvals: 2\n  operators: [an]\n",
            (
                "12:14: emergency.operators: two-person approval needs at least 2 named operators, "
                "got: 1"
            ),
        ),
        (
            "emergency: {approvals: 2}\n",
            (
                "10:24: emergency.approvals: two-person approval needs at least 2 named operators, "
                "got: 0"
            ),
        ),
        (
            "emergency: {operators: [an, binh, an]}\n",
            "10:35: emergency.operators[2]: operator listed twice, got: 'an'",
        ),
        (
            "emergency: {request_ttl: soon}\n",
            "10:26: emergency.request_ttl: expected a duration such as 30s, 15m or 6h, got: 'soon'",
        ),
    ],
)
def test_mistakes_are_reported_at_their_line(tmp_path, capsys, extra, expected):
    code, lines = check(tmp_path, extra, capsys)
    assert code == 78
    assert lines == [expected]


def test_a_slot_named_exercise_clashes_with_the_exercise_section(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        BASE.replace('  noon: {at: "11:30"}', '  noon: {at: "11:30"}\n  exercise: {at: "09:00"}')
        + "exercise: {day: first-wed, at: '11:45'}\n",
        encoding="utf-8",
    )
    assert run(["check", "-c", str(path)]) == 78
    err = capsys.readouterr().err
    assert (
        "c.yaml:6:3: slots.exercise: slot name 'exercise' is reserved for the monthly exercise "
        "section" in err
    )
