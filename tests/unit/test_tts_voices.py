"""The TTS chain speaks normalised text, with each engine's per-language voice settings."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from typing import TYPE_CHECKING

import pytest
from support.gtts_server import FakeGtts, make_speech_mp3

from broadcastd.config import Config, EspeakVoice, GttsVoice, Tts
from broadcastd.errors import RenderError
from broadcastd.models import PlanItem
from broadcastd.render.normalize import Normalizer
from broadcastd.render.renderer import Renderer
from broadcastd.render.store import AudioStore
from broadcastd.render.tts import EspeakEngine, GttsEngine, TtsChain, build_chain

if TYPE_CHECKING:
    from pathlib import Path

NOTICE = "UBND xã họp lúc 7h30 ngày 15/12"
SPOKEN = "ủy ban nhân dân xã họp lúc bảy giờ ba mươi phút ngày mười lăm tháng mười hai"


class RecordingEspeak(EspeakEngine):
    """espeak-ng that remembers what it was asked to say."""

    def __init__(self) -> None:
        super().__init__(5.0)
        self.heard: list[str] = []

    async def synthesize(self, text: str, lang: str) -> bytes:
        self.heard.append(text)
        return await super().synthesize(text, lang)


async def test_engines_get_the_normalised_text():
    engine = RecordingEspeak()
    speech = await TtsChain([engine], 22050).speak(NOTICE, "vi")
    assert engine.heard == [SPOKEN]
    assert speech.pcm.seconds > 1


async def test_a_text_with_no_words_is_a_clear_error_not_silence():
    engine = RecordingEspeak()
    with pytest.raises(RenderError, match="nothing to speak"):
        await TtsChain([engine], 22050).speak(" *** ", "vi")
    assert engine.heard == []


def test_espeak_takes_voice_variant_and_rate_per_language():
    default = EspeakEngine(5.0)
    assert default.argv("vi") == ["espeak-ng", "-v", "vi", "-s", "150", "--stdout"]
    south = EspeakEngine(
        5.0, voices={"vi": EspeakVoice(voice="vi-vn-x-south", variant="f2", rate=120)}
    )
    assert south.argv("vi") == ["espeak-ng", "-v", "vi-vn-x-south+f2", "-s", "120", "--stdout"]
    assert south.voice_for("vi") != default.voice_for("vi")


async def test_a_slower_espeak_rate_is_really_slower():
    text = "Thông báo lịch tiêm phòng cho gia súc tại nhà văn hóa thôn Bản Chương."
    slow = EspeakEngine(5.0, voices={"vi": EspeakVoice(rate=110)})
    fast = EspeakEngine(5.0, voices={"vi": EspeakVoice(rate=220)})
    slow_s = (await TtsChain([slow], 22050).speak(text, "vi")).pcm.seconds
    fast_s = (await TtsChain([fast], 22050).speak(text, "vi")).pcm.seconds
    assert slow_s > 1.6 * fast_s


def _gtts_request(body: bytes) -> list[object]:
    form = urllib.parse.unquote(body.decode().removeprefix("f.req=").rstrip("&"))
    rpc = json.loads(form)
    request: list[object] = json.loads(rpc[0][0][1])  # [text, lang, speed, "null"]
    return request


async def test_gtts_gets_the_normalised_text_and_the_slow_flag(tmp_path: Path):
    mp3 = make_speech_mp3("Xin chào", tmp_path / "g.mp3")
    with FakeGtts(mp3) as fake:
        normal = GttsEngine(2.0, base_url=fake.url)
        slow = GttsEngine(2.0, base_url=fake.url, voices={"vi": GttsVoice(tld="com.vn", slow=True)})
        await TtsChain([normal], 22050).speak("5°C", "vi")
        await TtsChain([slow], 22050).speak("5°C", "vi")
    assert [_gtts_request(b) for b in fake.bodies] == [
        ["năm độ xê", "vi", None, "null"],
        ["năm độ xê", "vi", True, "null"],
    ]
    assert "com.vn:slow" in slow.voice_for("vi")


def _renderer(tmp_path: Path, normalizer: Normalizer, engine: EspeakEngine | None = None):
    config = Config.model_validate(
        {
            "commune": {"id": "x", "name": "X"},
            "signing": {"private_key_file": str(tmp_path / "key")},
            "state_dir": str(tmp_path),
            "slots": {"noon": {"at": "11:30"}},
            "hamlets": [{"id": "h", "name": "H", "households": 1}],
        }
    )
    chain = TtsChain([engine or EspeakEngine(5.0)], 22050, normalizer=normalizer)
    return Renderer(config, AudioStore(tmp_path / "audio"), chain)


def _item(text: str) -> PlanItem:
    return PlanItem("a", "t", "c", "vi", "tts", "normal", 1.0, text=text)


def test_the_render_key_follows_what_is_spoken(tmp_path: Path):
    plain = _renderer(tmp_path, Normalizer())
    # written two ways, read the same: one clip
    assert plain.key_for(_item("Họp lúc 7h30")) == plain.key_for(_item("Họp lúc 7 giờ 30 phút"))
    local = _renderer(tmp_path, Normalizer({"Nà Lay": "Nà Lai"}))
    # a lexicon entry re-renders the texts it changes, and only those
    assert local.key_for(_item("Thôn Nà Lay")) != plain.key_for(_item("Thôn Nà Lay"))
    assert local.key_for(_item("Thôn Bản Chương")) == plain.key_for(_item("Thôn Bản Chương"))
    south = _renderer(tmp_path, Normalizer(numbers="south"))
    assert south.key_for(_item("105 hộ")) != plain.key_for(_item("105 hộ"))
    slower = _renderer(
        tmp_path, Normalizer(), EspeakEngine(5.0, voices={"vi": EspeakVoice(rate=120)})
    )
    assert slower.key_for(_item("Thôn Nà Lay")) != plain.key_for(_item("Thôn Nà Lay"))


def test_build_chain_takes_lexicon_numbers_and_voices_from_the_config():
    tts = Tts.model_validate(
        {
            "engines": ["espeak"],
            "timeout": "3s",
            "numbers": "south",
            "lexicon": {"Nà Lay": "Nà Lai"},
            "voices": {"vi": {"espeak": {"variant": "m3", "rate": 140}}},
        }
    )
    chain = build_chain(tts, 22050)
    assert chain.spoken("Thôn Nà Lay có 105 hộ", "vi") == "Thôn Nà Lai có một trăm lẻ năm hộ"
    (engine,) = chain.engines
    assert isinstance(engine, EspeakEngine)
    assert engine.argv("vi") == ["espeak-ng", "-v", "vi+m3", "-s", "140", "--stdout"]
    assert engine.timeout == dt.timedelta(seconds=3).total_seconds()
