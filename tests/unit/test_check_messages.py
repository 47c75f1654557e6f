"""`check` says what it means (issue 17, item 10) where tests/data/bad/ cannot: language tags
written in words load, and warnings about an included announcement number it within its file.
The exact error lines for each mistake are in test_config_bad.py."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.cli.main import run
from broadcastd.config import load_config
from broadcastd.plan.slotplan import build_plan

if TYPE_CHECKING:
    import pytest

ROOT = Path(__file__).parent.parent.parent
CLIP = ROOT / "audio" / "recordings" / "vaccine-dao.ogg"
COMMUNE = """\
commune: {id: thu, name: "Xã Thử"}
signing: {private_key_file: key}
state_dir: state
slots: {noon: {at: "11:30"}}
hamlets:
  - {id: ban-a, name: Bản A, households: 10, languages: [vi, san-diu, cao-lan]}
"""


def test_language_tags_written_in_words_load_and_play(tmp_path):
    shutil.copy(CLIP, tmp_path / "clip.ogg")
    path = tmp_path / "c.yaml"
    path.write_text(
        COMMUNE + "announcements:\n"
        "  - {id: hop, title: Họp, text: {vi: Mời họp.}, audio: {san-diu: clip.ogg},"
        " slots: [noon]}\n",
        encoding="utf-8",
    )
    loaded = load_config(path)
    (plan,) = build_plan(loaded, dt.date(2026, 11, 24))
    assert [(i.lang, i.kind) for i in plan.items] == [("vi", "tts"), ("san-diu", "recording")]


def test_a_warning_numbers_an_included_announcement_within_its_own_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "c.yaml").write_text(
        COMMUNE + "include: [inc/*.yaml]\n"
        "announcements:\n"
        "  - {id: hop, title: Họp, text: {vi: Mời họp.}, slots: [noon]}\n",
        encoding="utf-8",
    )
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "old.yaml").write_text(
        "- {id: moi, title: Mới, text: {vi: Tin mới.}, slots: [noon]}\n"
        "- id: cu\n"
        "  title: Cũ\n"
        "  text: {vi: Tin cũ.}\n"
        "  slots: [noon]\n"
        "  until: 2020-01-31\n",
        encoding="utf-8",
    )
    (tmp_path / "key").write_bytes(b"0" * 32)
    monkeypatch.chdir(tmp_path)
    assert run(["check", "-c", "c.yaml"]) == 0
    _, err = capsys.readouterr()
    today = dt.datetime.now(load_config("c.yaml").config.commune.tz).date()
    assert err.splitlines() == [
        (
            "inc/old.yaml:2:7: warning: announcements[1]: reaches no hamlet: its window ended "
            f"before today ({today}), got: '2020-01-31'"
        )
    ]
