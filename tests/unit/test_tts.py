"""TTS engines and the fall-through chain: a fake gTTS server on loopback, real espeak-ng."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.clock import FakeClock
from support.e2e import wait_for
from support.gtts_server import Blackhole, FakeGtts, make_speech_mp3

from broadcastd.errors import RenderError
from broadcastd.metrics import Metrics
from broadcastd.render.tts import EspeakEngine, GttsEngine, TtsChain, TtsEngine, TtsTimeoutError

TEXT = "Xin chào bà con"


@pytest.fixture(scope="module")
def google_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_speech_mp3(TEXT, tmp_path_factory.mktemp("gtts") / "voice.mp3")


def renders(metrics: Metrics, engine: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "broadcastd_tts_renders_total", {"engine": engine, "result": result}
    )
    return value or 0.0


# For replies the fake gives at once: gTTS's first use imports requests inside the timeout, and
# on a loaded machine that alone can take a second. Only a test of the timeout sets a short one.
ANSWERED = 30.0


def chain(
    url: str, metrics: Metrics, clock: FakeClock | None = None, timeout: float = ANSWERED
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
    ("mode", "result", "limit"),
    [("html", "invalid", ANSWERED), ("429", "failed", ANSWERED), ("stalled", "timeout", 0.5)],
)
async def test_bad_gtts_replies_fall_through_to_espeak(google_mp3, mode, result, limit):
    metrics = Metrics()
    with FakeGtts(google_mp3, mode=mode) as fake:
        speech = await chain(fake.url, metrics, timeout=limit).speak(TEXT, "vi")
        if mode == "stalled":
            # Given up on, never waited for: espeak has spoken, and gTTS's one request is still
            # held unanswered (on a loaded machine it may reach the server only after the
            # timeout, from the abandoned worker thread).
            await wait_for(lambda: fake.held == 1, 30, "the stalled request at the server")
    assert fake.requests == 1
    assert speech.engine == "espeak"
    assert speech.pcm.seconds > 0.3
    assert renders(metrics, "gtts", result) == 1
    assert renders(metrics, "espeak", "ok") == 1


async def test_slow_gtts_within_timeout_still_wins(google_mp3):
    with FakeGtts(google_mp3, mode="slow", delay=0.2) as fake:
        speech = await chain(fake.url, Metrics()).speak(TEXT, "vi")
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
    metrics = Metrics()
    with Blackhole() as hole:
        speech = await chain(hole.url, metrics, timeout=0.5).speak(TEXT, "vi")
    assert speech.engine == "espeak"
    assert renders(metrics, "gtts", "timeout") == 1


def running(script: Path) -> list[str]:
    """Pids of processes running `script` (its path is in their command line)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(script).encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            continue  # exited while we looked
    return found


async def test_hung_espeak_is_killed_at_the_timeout(tmp_path: Path):
    script = tmp_path / "hung-espeak"
    # The shell itself waits (no exec), so the script's path stays in its command line.
    script.write_text("#!/bin/sh\nwhile :; do sleep 1; done\n")
    script.chmod(0o755)
    with pytest.raises(TtsTimeoutError):
        await EspeakEngine(0.3, binary=str(script)).synthesize(TEXT, "vi")
    assert running(script) == []  # killed and reaped, not left hanging


async def test_no_engine_left_names_every_failure(google_mp3):
    with FakeGtts(google_mp3, mode="html") as fake:
        tts = TtsChain([GttsEngine(ANSWERED, base_url=fake.url)], 22050)
        with pytest.raises(RenderError, match="gtts output: empty audio"):
            await tts.speak(TEXT, "vi")
