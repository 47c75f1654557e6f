"""Rendering the coming slots' audio early, so a slot never waits on TTS, and pruning old clips.

A clip spoken by a fallback engine (espeak-ng during a network outage) is spoken again by the
preferred one (gTTS) once it answers, here and only here: render-ahead runs beside the dispatcher,
so a slot never waits for it, and only clips of slots not yet published are asked for, so what a
hamlet hears in one slot does not change after its playlist went out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

from broadcastd.errors import BroadcastdError, RenderError
from broadcastd.plan.slotplan import build_plan

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.config import LoadedConfig
    from broadcastd.controller.slotfeed import SlotFeed
    from broadcastd.models import SlotPlan
    from broadcastd.render.renderer import Renderer

log = logging.getLogger(__name__)

RENDER_AHEAD_INTERVAL_S = 300.0
# Clips no plan has asked for in this long leave the audio store (a live playlist's clips are
# looked up at every dispatch and re-publish, which keeps them fresh).
AUDIO_RETENTION_S = 30 * 86400.0
AUDIO_PRUNE_EVERY_S = 86400.0


class RenderAhead:
    """Every few minutes: render the next `tts.render_ahead` of slots; once a day, prune."""

    def __init__(
        self,
        loaded: Callable[[], LoadedConfig],
        renderer: Renderer,
        feed: SlotFeed,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._loaded = loaded  # read each round: a reload changes what is ahead
        self._renderer = renderer
        self._feed = feed
        self._clock = clock

    async def run(self) -> None:
        pruned_at = 0.0
        while True:
            if time.monotonic() - pruned_at >= AUDIO_PRUNE_EVERY_S or not pruned_at:
                pruned_at = time.monotonic()
                await self._prune()
            await self.render_once()
            await asyncio.sleep(RENDER_AHEAD_INTERVAL_S)

    async def _prune(self) -> None:
        removed = await asyncio.to_thread(self._renderer.store.prune, AUDIO_RETENTION_S)
        if removed:
            log.info("audio store: pruned %d files unused for 30 days", removed)

    async def render_once(self) -> None:
        loaded = self._loaded()
        config = loaded.config
        now = dt.datetime.fromtimestamp(self._clock(), tz=config.commune.tz)
        horizon = now + config.tts.render_ahead
        days = (horizon.date() - now.date()).days + 1
        plans = [p for p in build_plan(loaded, now.date(), days) if now < p.play_at <= horizon]
        try:
            summary = await self._renderer.render_plans(plans)
        except BroadcastdError as exc:
            log.error("render-ahead failed: %s", exc)
        else:
            if summary.failed:
                log.error(
                    "render-ahead: %d clips failed: %s",
                    len(summary.failed),
                    "; ".join(summary.failed),
                )
        try:
            await self.respeak_fallbacks([p for p in plans if now < p.publish_at])
        except BroadcastdError as exc:  # the store could not be written: the old clips serve
            log.error("render-ahead: fallback clips not spoken again: %s", exc)
        self._feed.mark_audio_state(plans, self._renderer)

    async def respeak_fallbacks(self, plans: list[SlotPlan]) -> list[str]:
        """Speak again, with the preferred engine only, each TTS clip of `plans` a fallback spoke;
        returns the items whose clip was replaced.

        While the preferred engine fails (and during the back-off its failure opens) the
        fallback's clip stays and serves; the first failure ends the pass, as every next clip
        would only wait for the same dead uplink.
        """
        renderer = self._renderer
        preferred = renderer.chain.preferred
        replaced: list[str] = []
        seen: set[str] = set()
        for item in (i for plan in plans for i in plan.items if i.kind == "tts"):
            key = renderer.key_for(item)
            spoken_by = await asyncio.to_thread(renderer.store.engine_of, key)
            if key in seen or spoken_by in (None, preferred):
                continue
            seen.add(key)
            name = f"{item.announcement}/{item.lang}"
            if renderer.chain.backing_off(preferred) > 0:
                break
            try:
                await renderer.clip_for(item, force=True, preferred_only=True)
            except RenderError as exc:
                log.info(
                    "%s: kept the %s clip, %s did not answer: %s", name, spoken_by, preferred, exc
                )
                break
            log.info("%s: spoken again by %s, replacing the %s clip", name, preferred, spoken_by)
            replaced.append(name)
        return replaced
