"""Rendering with real espeak-ng and ffmpeg, gTTS faked on loopback; clips checked by ffprobe."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from support.gtts_server import Blackhole, FakeGtts, make_speech_mp3
from support.rendering import (
    KILL_CLIPS,
    TEXTS,
    item,
    kill_items,
    make_config,
    plans,
    renderer,
    spawn_render,
)

from broadcastd.metrics import Metrics
from broadcastd.models import PlanItem
from broadcastd.render.renderer import build_renderer
from broadcastd.render.tts import EspeakEngine, GttsEngine, TtsEngine

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries",
         "stream=codec_name,channels,sample_rate,bit_rate:format=duration", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    return {**data["streams"][0], "duration": data["format"]["duration"]}


def ebur128(path: Path) -> float:
    err = subprocess.run(
        ["ffmpeg", "-nostats", "-hide_banner", "-i", str(path), "-af", "ebur128=framelog=verbose",
         "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stderr  # fmt: skip
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", err)[-1])


@pytest.fixture(scope="module")
def google_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_speech_mp3("Thông báo của ủy ban xã.", tmp_path_factory.mktemp("g") / "g.mp3")


async def test_every_clip_has_format_loudness_and_duration(tmp_path, google_mp3):
    metrics = Metrics()
    with FakeGtts(google_mp3) as fake:
        engines: list[TtsEngine] = [GttsEngine(2.0, base_url=fake.url), EspeakEngine(5.0)]
        r = renderer(tmp_path, engines, metrics)
        gtts_clip = await r.clip_for(item(9, "Thông báo của ủy ban xã."))
    espeak = renderer(tmp_path, [EspeakEngine(5.0)])
    summary = await espeak.render_plans(plans([item(i, t) for i, t in enumerate(TEXTS[:3])]))
    assert summary.failed == []
    assert summary.rendered == {"espeak": 3, "recording": 2}  # 3 texts + intro and outro chimes
    clips = sorted((tmp_path / "audio").glob("*.mp3"))
    assert len(clips) == 6
    assert gtts_clip.path in clips
    for path in clips:
        info = probe(path)
        assert info["codec_name"] == "mp3", path
        assert info["channels"] == 1
        assert info["sample_rate"] == "22050"
        assert abs(int(info["bit_rate"]) - 32000) <= 3200
        assert abs(ebur128(path) - (-16.0)) <= 1.5, path
    assert abs(gtts_clip.duration_ms / 1000 - float(probe(gtts_clip.path)["duration"])) < 0.06
    assert metrics.registry.get_sample_value("broadcastd_render_seconds_count") == 1


async def test_opus_format_is_honoured(tmp_path):
    r = renderer(tmp_path, [EspeakEngine(5.0)], format="opus", bitrate="24k")
    clip = await r.clip_for(item(1, TEXTS[0]))
    info = probe(clip.path)
    assert clip.path.suffix == ".opus"
    assert info["codec_name"] == "opus"
    assert info["channels"] == 1
    assert abs(ebur128(clip.path) - (-16.0)) <= 1.5
    assert abs(clip.duration_ms / 1000 - float(info["duration"])) < 0.06


async def test_second_render_makes_no_tts_call_and_is_fast(tmp_path):
    items = [item(i, t) for i, t in enumerate(TEXTS)]
    first = renderer(tmp_path, [EspeakEngine(5.0)])
    await first.render_plans(plans(items))
    metrics = Metrics()
    second = renderer(tmp_path, [EspeakEngine(5.0)], metrics)  # a new process would start like this
    started = time.monotonic()
    summary = await second.render_plans(plans(items))
    elapsed = time.monotonic() - started
    assert sum(second.chain.calls.values()) == 0
    assert summary.rendered == {}
    assert summary.cached == len(items) + 2
    assert elapsed < 1.0
    assert metrics.registry.get_sample_value("broadcastd_render_cache_hits_total") == len(items) + 2
    assert second.cached(items[0]) is not None
    assert second.cached(item(99, "Một câu chưa từng được đọc.")) is None


async def test_changed_text_or_setting_renders_again(tmp_path):
    r = renderer(tmp_path, [EspeakEngine(5.0)])
    a = await r.clip_for(item(1, TEXTS[0]))
    assert (await r.clip_for(item(1, TEXTS[0]))) == a
    assert (await r.clip_for(item(1, TEXTS[1]))).sha256 != a.sha256
    louder = renderer(tmp_path, [EspeakEngine(5.0)], loudness_lufs=-12)
    assert louder.cached(item(1, TEXTS[0])) is None


async def test_blackholed_gtts_costs_at_most_one_timeout(tmp_path):
    items = [item(i, t) for i, t in enumerate(TEXTS)]
    only = renderer(tmp_path / "a", [EspeakEngine(5.0)])
    started = time.monotonic()
    await only.render_plans(plans(items), chimes=False)
    espeak_only = time.monotonic() - started
    timeout = 1.0
    with Blackhole() as hole:
        r = renderer(tmp_path / "b", [GttsEngine(timeout, base_url=hole.url), EspeakEngine(5.0)])
        started = time.monotonic()
        summary = await r.render_plans(plans(items), chimes=False)
        with_hole = time.monotonic() - started
    assert summary.failed == []
    assert summary.rendered == {"espeak": len(items)}
    assert with_hole <= espeak_only + timeout + 0.3, (with_hole, espeak_only)


async def test_a_failing_clip_is_named_and_the_others_render(tmp_path, google_mp3):
    missing = PlanItem("flood-dao", "Lũ", "safety", "dao", "recording", "emergency", 5.0,
                       recording=tmp_path / "nope.ogg")  # fmt: skip
    garbage = tmp_path / "garbage.ogg"
    garbage.write_bytes(b"<html>not audio</html>")
    broken = PlanItem("vaccine", "Tiêm", "health", "tay", "recording", "normal", 5.0,
                      recording=garbage)  # fmt: skip
    with FakeGtts(google_mp3, mode="429") as fake:
        r = renderer(tmp_path, [GttsEngine(1.0, base_url=fake.url)])
        summary = await r.render_plans(plans([missing, broken, item(1, TEXTS[0])]), chimes=True)
    assert [f.split(":")[0] for f in summary.failed] == ["ann-1/vi", "flood-dao/dao", "vaccine/tay"]
    assert summary.rendered == {"recording": 2}  # the chimes still rendered


def test_kill_9_mid_render_leaves_no_partial_clip(tmp_path):
    store = tmp_path / "audio"
    proc = spawn_render(tmp_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(store.glob("index/*.json"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(store.glob("index/*.json")))
    assert 3 <= done < KILL_CLIPS, "the kill must land mid-way"
    for path in store.glob("*.mp3"):  # anything under a real name is whole
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
    for entry in store.glob("index/*.json"):
        sha = json.loads(entry.read_text())["sha256"]
        assert (store / f"{sha}.mp3").is_file()
    r = renderer(tmp_path, [EspeakEngine(5.0)])
    summary = asyncio_run(r.render_plans(plans(kill_items()), chimes=False))
    assert summary.failed == []
    assert summary.cached >= done
    assert summary.cached + summary.rendered["espeak"] == KILL_CLIPS


def asyncio_run(
    coro: Coroutine[Any, Any, T],
) -> T:  # a sync test: the kill loop above polls the file system
    import asyncio  # noqa: PLC0415 - only this helper needs it

    return asyncio.run(coro)


async def test_build_renderer_reads_gtts_url_override(tmp_path, monkeypatch, google_mp3):
    with FakeGtts(google_mp3) as fake:
        monkeypatch.setenv("BROADCASTD_GTTS_URL", fake.url)
        config = make_config(tmp_path)
        r = build_renderer(config, engines=["gtts", "espeak"])
        clip = await r.clip_for(item(1, TEXTS[0]))
    assert fake.requests == 1
    assert r.store.lookup(r.key_for(item(1, TEXTS[0])))[1]["engine"] == "gtts"  # type: ignore[index]
    assert clip.path.parent == tmp_path / "audio"


def child_commands() -> list[str]:
    """Command names of this process's live children (Linux /proc)."""
    names = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
    return names


async def test_encoder_started_early_is_stopped_when_speech_fails(tmp_path, google_mp3):
    # ffmpeg is started while the speech is made: a clip whose speech fails must not leave it behind
    with FakeGtts(google_mp3, mode="429") as fake:
        r = renderer(tmp_path, [GttsEngine(1.0, base_url=fake.url)])
        summary = await r.render_plans(plans([item(1, TEXTS[0])]), chimes=False)
    assert [f.split(":")[0] for f in summary.failed] == ["ann-1/vi"]
    assert "ffmpeg" not in child_commands()
    assert list((tmp_path / "audio").glob("*.mp3")) == []


@pytest.fixture
def quiet_and_hot(tmp_path: Path) -> list[PlanItem]:
    """Recordings far from the target: 30 dB too quiet, 12 dB too hot (clipped at full scale)."""
    voice = subprocess.run(
        ["espeak-ng", "-v", "vi", "--stdout"], input=TEXTS[1].encode(), capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    items = []
    for name, gain in (("quiet", "-30dB"), ("hot", "12dB")):
        path = tmp_path / f"{name}.wav"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "wav", "-i", "pipe:0",
             "-af", f"volume={gain}", str(path)],
            input=voice, check=True,
        )  # fmt: skip
        items.append(PlanItem(name, name, "general", "vi", "recording", "normal", 3.0,
                              recording=path))  # fmt: skip
    return items


async def test_quiet_and_hot_recordings_land_on_target(tmp_path, quiet_and_hot):
    r = renderer(tmp_path, [EspeakEngine(5.0)])
    summary = await r.render_plans(plans(quiet_and_hot), chimes=False)
    assert summary.failed == []
    for it in quiet_and_hot:
        clip = r.cached(it)
        assert clip is not None
        assert abs(ebur128(clip.path) - (-16.0)) <= 1.5, it.announcement
