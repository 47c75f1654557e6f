"""`broadcastd say`: the line the engine gets, with or without a config; `--out` renders it
through the normal chain (real espeak-ng and ffmpeg; gTTS only ever the fake on loopback)."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING

import pytest
from support.communes import write_one_hamlet
from support.gtts_server import FakeGtts, make_speech_mp3

from broadcastd.cli.main import run

if TYPE_CHECKING:
    from pathlib import Path


def duration(path: Path) -> tuple[str, float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries",
         "stream=codec_name:format=duration", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    return data["streams"][0]["codec_name"], float(data["format"]["duration"])


def test_without_a_config_it_prints_the_line_with_the_builtin_lexicon(capsys):
    assert run(["say", "UBND xã họp lúc 7h30 ngày 15/12, mời WHO"]) == 0
    out, err = capsys.readouterr()
    assert out == (
        "ủy ban nhân dân xã họp lúc bảy giờ ba mươi phút ngày mười lăm tháng mười hai, mời vê kép "
        "hát o\n"
    )
    assert "note: 'WHO' read as 'vê kép hát o'" in err


def test_with_a_config_the_commune_lexicon_and_number_style_apply(tmp_path, capsys):
    path = write_one_hamlet(tmp_path, tts='{numbers: south, lexicon: {"Nà Lay": "Nà Lai"}}')
    assert run(["say", "-c", str(path), "Thôn Nà Lay có 105 hộ"]) == 0
    assert capsys.readouterr().out == "Thôn Nà Lai có một trăm lẻ năm hộ\n"


def test_out_renders_through_the_configured_chain(tmp_path, capsys):
    path = write_one_hamlet(tmp_path, tts="{engines: [espeak]}")
    clip = tmp_path / "thong-bao.mp3"
    assert run(["say", "-c", str(path), "--out", str(clip), "Họp thôn lúc 19h30."]) == 0
    out, err = capsys.readouterr()
    assert out == "Họp thôn lúc mười chín giờ ba mươi phút.\n"
    assert f"wrote {clip} (espeak," in err
    codec, seconds = duration(clip)
    assert codec == "mp3"
    assert 1.0 < seconds < 10.0


def test_out_without_a_config_tries_gtts_first(tmp_path, capsys, monkeypatch):
    mp3 = make_speech_mp3("Xin chào bà con", tmp_path / "voice.mp3")
    clip = tmp_path / "chao.opus"
    with FakeGtts(mp3) as fake:
        monkeypatch.setenv("BROADCASTD_GTTS_URL", fake.url)
        assert run(["say", "--out", str(clip), "Xin chào bà con"]) == 0
    assert fake.requests == 1
    assert "(gtts," in capsys.readouterr().err
    assert duration(clip)[0] == "opus"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["say", "--lang", "dao", "x"], 2, "--lang: no configured TTS engine speaks 'dao'"),
        (["say", "--out", "x.wav", "x"], 2, "--out: name the file .mp3, .opus or .ogg"),
        (["say", "* * *"], 2, "nothing to say: the text has no words"),
        (["say", "-c", "/nonexistent/broadcastd.yaml", "x"], 78, "/nonexistent/broadcastd.yaml"),
    ],
)
def test_mistakes_are_one_line_and_the_right_exit_code(argv, code, message, capsys):
    assert run(argv) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
    assert "Traceback" not in err
