"""Fallback speech does not stick (issue 17, item 7).

gTTS is the fake server on loopback (BROADCASTD_GTTS_URL), never a public host. While it fails,
espeak-ng speaks the bulletin and the store records that engine. The slot's dispatch is served
from the store at once and never asks gTTS. Once gTTS answers again (after the back-off its
failure opened), render-ahead speaks the clip again with gTTS, before the slot is published; a
failed attempt keeps the espeak-ng clip.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import pytest
from support.clock import FakeClock
from support.e2e import write_commune
from support.gtts_server import FakeGtts, make_speech_mp3

from broadcastd.config import load_config
from broadcastd.controller.renderahead import RenderAhead
from broadcastd.controller.slotfeed import SlotFeed
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics
from broadcastd.plan.slotplan import build_plan
from broadcastd.render.renderer import build_renderer
from broadcastd.render.tts import BACKOFF_S, GTTS_URL_ENV

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.controller.dispatch import SlotDue
    from broadcastd.models import PlanItem
    from broadcastd.render.renderer import Renderer

TEXT = "Bà con chú ý phòng chống rét cho trâu bò."


@pytest.fixture(scope="module")
def google_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_speech_mp3(TEXT, tmp_path_factory.mktemp("gtts") / "voice.mp3")


def spoken_by(renderer: Renderer, item: PlanItem) -> str:
    """The engine the store's index names for the item's clip."""
    index = renderer.store.index_dir / f"{renderer.key_for(item)}.json"
    engine: str = json.loads(index.read_text("utf-8"))["engine"]
    return engine


async def test_a_clip_espeak_spoke_while_gtts_was_down_is_spoken_again_once_gtts_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, google_mp3: bytes
) -> None:
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, texts=(TEXT,))
    loaded = load_config(e2e.config_path)
    # An hour before the slot, half an hour before its publish time (lead 30m).
    clock = FakeClock(e2e.play_at.timestamp() - 3600)
    backoff = FakeClock(0.0)  # the TTS chain's monotonic clock
    journal = Journal.open(tmp_path / "journal.sqlite3")
    with FakeGtts(google_mp3, mode="429") as fake:
        monkeypatch.setenv(GTTS_URL_ENV, fake.url)
        renderer = build_renderer(loaded.config, Metrics(), engines=["gtts", "espeak"])
        renderer.chain.now = backoff
        queue: asyncio.Queue[SlotDue] = asyncio.Queue()
        feed = SlotFeed(loaded.config, queue, journal, Metrics(), clock=clock)
        ahead = RenderAhead(lambda: loaded, renderer, feed, clock=clock)
        (item,) = build_plan(loaded, e2e.play_at.date())[0].items

        await ahead.render_once()  # gTTS down: espeak-ng speaks, gTTS backs off
        assert spoken_by(renderer, item) == "espeak"
        assert fake.requests == 1
        fallback = await renderer.clip_for(item)

        fake.mode = "good"
        started = time.monotonic()
        assert await renderer.clip_for(item) == fallback  # what the dispatcher asks for
        assert time.monotonic() - started < 1.0
        await ahead.render_once()  # still inside the back-off: gTTS is not asked
        assert fake.requests == 1
        assert spoken_by(renderer, item) == "espeak"

        fake.mode = "429"
        backoff.t += BACKOFF_S
        await ahead.render_once()  # asked once, still failing: the espeak-ng clip stays
        assert fake.requests == 2
        assert spoken_by(renderer, item) == "espeak"
        assert await renderer.clip_for(item) == fallback

        fake.mode = "good"
        backoff.t += 2 * BACKOFF_S  # the back-off doubled after the second failure
        await ahead.render_once()
        assert fake.requests == 3
        assert spoken_by(renderer, item) == "gtts"
        respoken = await renderer.clip_for(item)
        assert respoken.sha256 != fallback.sha256
        assert respoken.earlier == (fallback.sha256,)  # the dispatcher knows it says the same

        await ahead.render_once()  # nothing left to speak again
        assert fake.requests == 3
    journal.close()


async def test_a_slot_already_published_keeps_its_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, google_mp3: bytes
) -> None:
    """Inside `lead` the playlist is out: its audio does not change under it."""
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, texts=(TEXT,))
    loaded = load_config(e2e.config_path)
    clock = FakeClock(e2e.play_at.timestamp() - 600)  # published 20 minutes ago
    journal = Journal.open(tmp_path / "journal.sqlite3")
    with FakeGtts(google_mp3, mode="429") as fake:
        monkeypatch.setenv(GTTS_URL_ENV, fake.url)
        renderer = build_renderer(loaded.config, Metrics(), engines=["gtts", "espeak"])
        renderer.chain.backoff = 0.0  # gTTS may be asked again at once
        queue: asyncio.Queue[SlotDue] = asyncio.Queue()
        feed = SlotFeed(loaded.config, queue, journal, Metrics(), clock=clock)
        ahead = RenderAhead(lambda: loaded, renderer, feed, clock=clock)
        (item,) = build_plan(loaded, e2e.play_at.date())[0].items
        await ahead.render_once()
        fake.mode = "good"
        await ahead.render_once()
        assert fake.requests == 1
        assert spoken_by(renderer, item) == "espeak"
    journal.close()
