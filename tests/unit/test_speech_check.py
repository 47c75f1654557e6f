"""`broadcastd check` warns, at the line the word is on, about text that would still be read
badly after normalisation, and says what would be heard instead."""

from __future__ import annotations

from pathlib import Path

from support.communes import write_one_hamlet

from broadcastd.cli.main import run
from broadcastd.config import load_config
from broadcastd.render.speechcheck import speech_warnings

ROOT = Path(__file__).parent.parent.parent
TAIL = "add a tts.lexicon entry or reword it to say it otherwise"


ANNOUNCEMENT = """\
announcements:
  - id: vaccine
    title: "Tiêm phòng"
    slots: [noon]
    text:
      vi: >-
        UBND xã và tổ chức WHO khuyến cáo tiêm vắc xin sởi cho trẻ từ 9 tháng,
        xem tại dichvucong.gov.vn ★ hoặc gọi 115.
"""


def commune(tmp_path: Path, lexicon: str = "{}") -> Path:
    return write_one_hamlet(tmp_path, tts=f"{{lexicon: {lexicon}}}", rest=ANNOUNCEMENT)


def test_each_doubt_is_a_warning_at_its_line_saying_what_will_be_heard(tmp_path, capsys):
    path = commune(tmp_path)
    assert run(["check", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    spelled = "an all-caps word in no lexicon, spelled letter by letter"
    address = "a web or mail address, read part by part"
    where = "warning: announcements[0].text.vi: would be"
    assert err.splitlines() == [
        f"{path}:15:28: {where} read as 'vê kép hát o' ({spelled}); {TAIL}, got: 'WHO'",
        (
            f"{path}:16:17: {where} read as 'dich vu cong chấm gờ o vê chấm vê en' ({address}); "
            f"{TAIL}, got: 'dichvucong.gov.vn'"
        ),
        f"{path}:16:35: {where} left out (a symbol with no reading); {TAIL}, got: '★'",
    ]
    assert out.endswith("0 errors, 3 warnings (1 hamlet, 0 nodes, 1 households, 1 announcement)\n")
    assert run(["check", "--strict", "-c", str(path)]) == 78


def test_a_lexicon_entry_silences_the_warning_it_answers(tmp_path):
    loaded = load_config(commune(tmp_path, '{"WHO": "tổ chức y tế thế giới"}'))
    assert [w.value for w in speech_warnings(loaded)] == ["dichvucong.gov.vn", "★"]


def test_the_example_commune_has_nothing_read_badly():
    assert speech_warnings(load_config(ROOT / "config" / "sang-moc.yaml")) == []
