"""`broadcastd check` and `broadcastd schedule` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.cli.main import DEFAULT_CONFIG, build_parser, run

if TYPE_CHECKING:
    import pytest

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "config" / "sang-moc.yaml"
MONDAY_YAML = ROOT / "tests" / "data" / "good" / "monday.yaml"


def test_example_checks_clean(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code = run(["check", "-c", "config/sang-moc.yaml"])
    out, err = capsys.readouterr()
    assert code == 0
    # The only finding on a machine without the production key is that key (a warning).
    for line in err.splitlines():
        assert ": warning: " in line
        assert line.startswith("config/sang-moc.yaml:")
    n = len(err.splitlines())
    assert out == (
        f"config/sang-moc.yaml: 0 errors, {n} warning{'' if n == 1 else 's'} "
        "(10 hamlets, 16 nodes, 732 households, 8 announcements)\n"
    )


def _commune(tmp_path: Path, *, key: bool, extra: str = "") -> Path:
    if key:
        (tmp_path / "key").write_bytes(b"0" * 32)
    path = tmp_path / "c.yaml"
    path.write_text(
        'commune: {id: thu, name: "Xã Thử"}\n'
        "signing: {private_key_file: key}\n"
        "state_dir: state\n"
        'slots: {noon: {at: "11:30"}}\n'
        "hamlets: [{id: h, name: H, households: 1}]\n"
        "announcements:\n"
        "  - {id: ok, title: T, text: {vi: Xin chào}, slots: [noon]}\n" + extra,
        encoding="utf-8",
    )
    return path


def test_missing_key_is_a_warning_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _commune(tmp_path, key=False)
    assert run(["check", "-c", "c.yaml"]) == 0
    _, err = capsys.readouterr()
    assert err == (
        "c.yaml:2:29: warning: signing.private_key_file: key file does not exist; create it "
        f"with `broadcastd keygen` before `run`, got: '{tmp_path / 'key'}'\n"
    )
    assert run(["check", "-c", "c.yaml", "--strict"]) == 78


def test_clean_config_passes_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _commune(tmp_path, key=True)
    assert run(["check", "-c", "c.yaml", "--strict"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == "c.yaml: 0 errors, 0 warnings (1 hamlet, 0 nodes, 1 households, 1 announcement)\n"


def test_past_announcement_warning_with_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _commune(
        tmp_path,
        key=True,
        extra="  - {id: old, title: T, text: {vi: Cũ}, slots: [noon], until: 2020-01-31}\n",
    )
    assert run(["check", "-c", "c.yaml", "--strict"]) == 78
    _, err = capsys.readouterr()
    assert err.startswith(
        "c.yaml:8:10: warning: announcements[1]: reaches no hamlet: its window ended before today"
    )
    assert err.endswith(", got: '2020-01-31'\n")


def test_schedule_json_for_a_monday(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["schedule", "-c", str(MONDAY_YAML), "--date", "2026-11-30", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    plans = json.loads(out)
    # Hand-computed from tests/data/good/monday.yaml (see test_schedule.py for the reasoning).
    assert [
        (p["slot"], p["hamlet"], [(i["announcement"], i["lang"]) for i in p["items"]])
        for p in plans
    ] == [
        ("noon", "ban-a", [("weekly", "vi"), ("weekly", "dao"), ("dao-only", "dao")]),
        ("noon", "ban-b", [("weekly", "vi")]),
        ("noon", "ban-c", [("landslide", "vi"), ("weekly", "vi")]),
        ("afternoon", "ban-a", [("weekly", "vi"), ("weekly", "dao"), ("last-day", "vi")]),
        ("afternoon", "ban-b", [("insurance", "vi"), ("weekly", "vi"), ("last-day", "vi")]),
        (
            "afternoon",
            "ban-c",
            [("insurance", "tay"), ("insurance", "vi"), ("weekly", "vi"), ("last-day", "vi")],
        ),
    ]
    assert plans[2] == {
        "date": "2026-11-30",
        "slot": "noon",
        "hamlet": "ban-c",
        "play_at": "2026-11-30T11:30:00+07:00",
        "items": [
            # "Khẩn cấp: nguy cơ sạt lở đất, di chuyển khỏi chân đồi ngay." is 59 chars / 14 per s
            {
                "announcement": "landslide",
                "lang": "vi",
                "kind": "tts",
                "priority": "emergency",
                "duration_s": 4.2,
            },
            # 63 chars / 14 per s
            {
                "announcement": "weekly",
                "lang": "vi",
                "kind": "tts",
                "priority": "normal",
                "duration_s": 4.5,
            },
        ],
        "dropped": [],
    }
    assert plans[5]["items"][0] == {
        "announcement": "insurance",
        "lang": "tay",
        "kind": "recording",
        "priority": "priority",
        "duration_s": 4.2,
    }


def test_schedule_table_and_filters(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["schedule", "-c", str(MONDAY_YAML), "--date", "2026-11-30", "--days", "2"]
    assert run([*args, "--hamlet", "ban-c"]) == 0
    out, _ = capsys.readouterr()
    assert "Bản C" in out
    assert "Bản A" not in out
    assert "landslide vi/tts" in out
    assert "insurance tay/rec" in out
    assert run([*args, "--hamlet", "ban-z"]) == 2
    _, err = capsys.readouterr()
    assert err == "broadcastd schedule: --hamlet must be one of ban-a, ban-b, ban-c, got: 'ban-z'\n"
    assert run(["schedule", "-c", str(MONDAY_YAML), "--date", "30/11/2026"]) == 2
    _, err = capsys.readouterr()
    assert err == "broadcastd schedule: --date must be YYYY-MM-DD, got: '30/11/2026'\n"


def test_every_command_defaults_to_the_installed_config() -> None:
    # `say` takes no config by default; that must not take the default away from the others
    # (`broadcastd check` without -c was a TypeError traceback).
    parser = build_parser()
    for argv in (["check"], ["schedule"], ["nodes"], ["report"], ["run"]):
        assert parser.parse_args(argv).config == DEFAULT_CONFIG
    assert parser.parse_args(["say", "x"]).config is None


def test_simulate_refuses_a_negative_count(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["simulate", "-c", str(EXAMPLE), "--nodes", "-1"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == "broadcastd simulate: --nodes must be 0 (the config's nodes) or more, got: -1\n"
