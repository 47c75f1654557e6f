"""TTS engines and the fall-through chain: a fake gTTS server on loopback, real espeak-ng."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from support.clock import FakeClock
from support.gtts_server import Blackhole, FakeGtts, make_speech_mp3

from broadcastd.errors import RenderError
from broadcastd.metrics import Metrics
from broadcastd.render.tts import EspeakEngine, GttsEngine, TtsChain, TtsEngine, TtsTimeoutError

if TYPE_CHECKING:
    from pathlib import Path

TEXT = "Xin chào bà con"


@pytest.fixture(scope="module")
def google_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_speech_mp3(TEXT, tmp_path_factory.mktemp("gtts") / "voice.mp3")


def renders(metrics: Metrics, engine: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "broadcastd_tts_renders_total", {"engine": engine, "result": result}
    )
    return value or 0.0


def chain(
    url: str, metrics: Metrics, clock: FakeClock | None = None, timeout: float = 1.0
) -> TtsChain:
    engines: list[TtsEngine] = [GttsEngine(timeout, base_url=url), EspeakEngine(5.0)]
    return TtsChain(engines, 22050, metrics, now=clock or FakeClock(1000.0))


async def test_gtts_reply_is_decoded_and_used(google_mp3):
    metrics = Metrics()
    with FakeGtts(google_mp3) as fake:
        speech = await chain(fake.url, metrics).speak(TEXT, "vi")
    assert speech.engine == "gtts"
    assert fake.requests == 1
    assert speech.pcm.rate == 22050
    assert 0.3 < speech.pcm.seconds < 3
    assert renders(metrics, "gtts", "ok") == 1


@pytest.mark.parametrize(
    ("mode", "result"), [("html", "invalid"), ("429", "failed"), ("stalled", "timeout")]
)
async def test_bad_gtts_replies_fall_through_to_espeak(google_mp3, mode, result):
    metrics = Metrics()
    with FakeGtts(google_mp3, mode=mode) as fake:
        started = time.monotonic()
        speech = await chain(fake.url, metrics, timeout=0.5).speak(TEXT, "vi")
        elapsed = time.monotonic() - started
    assert speech.engine == "espeak"
    assert speech.pcm.seconds > 0.3
    assert renders(metrics, "gtts", result) == 1
    assert renders(metrics, "espeak", "ok") == 1
    assert elapsed < 2.0  # a stalled server costs one timeout (0.5 s), never a hang


async def test_slow_gtts_within_timeout_still_wins(google_mp3):
    with FakeGtts(google_mp3, mode="slow", delay=0.2) as fake:
        speech = await chain(fake.url, Metrics(), timeout=2.0).speak(TEXT, "vi")
    assert speech.engine == "gtts"


async def test_failed_gtts_is_skipped_for_a_doubling_backoff(google_mp3):
    metrics, clock = Metrics(), FakeClock(1000.0)
    with FakeGtts(google_mp3, mode="429") as fake:
        tts = chain(fake.url, metrics, clock)
        await tts.speak(TEXT, "vi")
        await tts.speak(TEXT, "vi")  # within the back-off: gTTS is not asked again
        assert fake.requests == 1
        assert renders(metrics, "gtts", "skipped") == 1
        assert tts.backing_off("gtts") == pytest.approx(300)
        clock.t += 301
        await tts.speak(TEXT, "vi")  # retried, fails again: the pause doubles
        assert fake.requests == 2
        assert tts.backing_off("gtts") == pytest.approx(600)
        fake.mode = "good"
        clock.t += 601
        assert (await tts.speak(TEXT, "vi")).engine == "gtts"
        assert tts.backing_off("gtts") == 0


async def test_blackholed_gtts_costs_one_timeout():
    with Blackhole() as hole:
        started = time.monotonic()
        speech = await chain(hole.url, Metrics(), timeout=0.5).speak(TEXT, "vi")
    assert speech.engine == "espeak"
    assert time.monotonic() - started < 1.5


async def test_hung_espeak_is_killed_at_the_timeout(tmp_path: Path):
    script = tmp_path / "hung-espeak"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(TtsTimeoutError):
        await EspeakEngine(0.3, binary=str(script)).synthesize(TEXT, "vi")
    assert time.monotonic() - started < 2


async def test_no_engine_left_names_every_failure(google_mp3):
    with FakeGtts(google_mp3, mode="html") as fake:
        tts = TtsChain([GttsEngine(1.0, base_url=fake.url)], 22050)
        with pytest.raises(RenderError, match="gtts output: empty audio"):
            await tts.speak(TEXT, "vi")
