"""Announcements and chimes -> loudness-normalised, low-bitrate clips in the store (DESIGN.md §4).

Per clip: TTS (or the recorded file) -> mono PCM at `audio.sample_rate` -> integrated loudness
measured -> a linear gain applied to 32-bit samples -> one ffmpeg run (started while the speech is
made) limits peaks at -1 dBFS, re-measures with ebur128 on the way to the encoder (verification
costs no extra process) and encodes once to `audio.format`. Off target, the gain is corrected
once; past ±1.5 LU the clip fails. A recorded file is decoded from the file itself (an M4A
from a phone keeps its index after the audio, which a pipe cannot reach) and read as the
container its first bytes name (render/recording.py).
`audio.gap` is silence at the end of every announcement clip and of the intro chime, so it is on
the air: speakers play a playlist's clips back to back (the wire has no gap field), and a
third-party speaker plays the same gaps without knowing about them. The outro ends the bulletin.
A render key (the text as the engines get it after normalisation, or the recording's hash;
language, engines and voices, audio settings, the silence after it, RENDERER_VERSION,
NORMALIZER_VERSION) indexes the result, so an unchanged announcement is never rendered twice, and
one whose reading changed (a lexicon entry, a better normaliser) is rendered again.
The store records which engine spoke each clip: one spoken by a fallback (espeak-ng while gTTS
was unreachable) is spoken again by the preferred engine once it answers (render-ahead asks,
`clip_for(..., preferred_only=True)`); until then the fallback's clip serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from broadcastd.errors import RenderError
from broadcastd.models import Clip, PlanItem, RenderSummary, SlotPlan
from broadcastd.render.duration import encoded_duration_ms
from broadcastd.render.loudness import (
    Pcm,
    decode,
    finish_tool,
    gain_for,
    start_tool,
    stop_tool,
    widened,
)
from broadcastd.render.normalize import NORMALIZER_VERSION
from broadcastd.render.recording import container_of
from broadcastd.render.store import AudioStore
from broadcastd.render.tts import TtsChain, build_chain

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.config import Audio, Config
    from broadcastd.metrics import Metrics

log = logging.getLogger(__name__)

RENDERER_VERSION = 1
TOLERANCE_LU = 1.5
# Aim tighter than the bar: the 32 kbit/s encoder itself shaves ~0.4-0.7 LU off short clips.
AIM_LU = 0.7
CEILING_DBFS = -1.0
_I_RE = re.compile(r"I:\s+(-?\d+(?:\.\d+)?) LUFS")
Progress = Callable[[int, int], None]  # (done, total)


class Renderer:
    """Turns plan items into clips, rendering only what the store does not already hold."""

    def __init__(
        self,
        config: Config,
        store: AudioStore,
        chain: TtsChain,
        metrics: Metrics | None = None,
        *,
        concurrency: int | None = None,
    ) -> None:
        self.audio = config.audio
        self.store = store
        self.chain = chain
        self.metrics = metrics
        # ffmpeg is CPU-bound: one clip per core keeps both cores busy without thrashing.
        self.concurrency = concurrency or max(2, os.cpu_count() or 2)
        self.encoder = Encoder(config.audio)
        self._gap_ms = round(config.audio.gap.total_seconds() * 1000)
        self._recording_hashes: dict[tuple[Path, int, int], str] = {}

    # --- keys and lookups -------------------------------------------------------------------------

    def tail_ms(self, item: PlanItem) -> int:
        """Silence after `item`'s sound: the gap before whatever follows it in a bulletin."""
        if item.kind != "chime" or item.recording == self.audio.intro:
            return self._gap_ms
        return 0

    def key_for(self, item: PlanItem) -> str:
        """The render key: everything that changes the produced audio."""
        if item.kind == "tts":
            if not item.text:
                raise RenderError(f"{item.announcement}/{item.lang}: no text to speak")
            spoken = self.chain.spoken(item.text, item.lang)
            signature = list(self.chain.signature(item.lang))
            source: list[object] = ["tts", spoken, item.lang, signature, NORMALIZER_VERSION]
        else:
            if item.recording is None:
                raise RenderError(f"{item.announcement}/{item.lang}: no recording")
            source = ["file", self._recording_hash(item.recording)]
        a = self.audio
        settings: list[object] = [a.format, a.bitrate, a.sample_rate, a.loudness_lufs]
        settings.append(RENDERER_VERSION)
        if tail := self.tail_ms(item):  # without one, keys stay those of clips rendered before
            settings.append(f"tail {tail}ms")
        blob = json.dumps([source, settings], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def _recording_hash(self, path: Path) -> str:
        try:
            st = path.stat()
            memo = (path, st.st_mtime_ns, st.st_size)
            if memo not in self._recording_hashes:
                self._recording_hashes[memo] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise RenderError(f"cannot read recording {path}: {exc.strerror}") from None
        return self._recording_hashes[memo]

    def cached(self, item: PlanItem) -> Clip | None:
        """What the store already has for `item`; never renders."""
        try:
            found = self.store.lookup(self.key_for(item))
        except RenderError:
            return None
        return found[0] if found else None

    # --- rendering --------------------------------------------------------------------------------

    def _distinct(self, plans: Iterable[SlotPlan], *, chimes: bool) -> list[PlanItem]:
        extra = (self.audio.intro, self.audio.outro) if chimes else ()
        return _distinct_items(plans, extra)

    async def clip_for(
        self, item: PlanItem, *, force: bool = False, preferred_only: bool = False
    ) -> Clip:
        clip, _ = await self._clip(item, force=force, preferred_only=preferred_only)
        return clip

    async def clip_and_engine(self, item: PlanItem) -> tuple[Clip, str]:
        """The clip for `item` and what spoke it (gtts, espeak, recording), rendering if needed."""
        clip, engine = await self._clip(item, force=False)
        if engine is None:  # from the store, whose index entry names the engine
            found = await asyncio.to_thread(self.store.lookup, self.key_for(item))
            engine = str(found[1].get("engine", "unknown")) if found else "unknown"
        return clip, engine

    async def chime(self, path: Path) -> Clip:
        return await self.clip_for(chime_item(path))

    async def _clip(
        self, item: PlanItem, *, force: bool, preferred_only: bool = False
    ) -> tuple[Clip, str | None]:
        """The clip and the engine that rendered it now (None: it came from the cache)."""
        what = f"{item.announcement}/{item.lang}" if item.lang else item.announcement
        key = await asyncio.to_thread(self.key_for, item)
        if not force:
            found = await asyncio.to_thread(self.store.lookup, key)
            if found is not None:
                if self.metrics is not None:
                    self.metrics.render_cache_hits_total.inc()
                return found[0], None
        started = time.perf_counter()
        # ffmpeg loads while the speech is made; it is stopped if the speech fails
        encoder = await self.encoder.start(what=what)
        try:
            if item.kind == "tts":
                speech = await self.chain.speak(
                    item.text or "", item.lang, preferred_only=preferred_only
                )
                pcm, engine = speech.pcm, speech.engine
            else:
                assert item.recording is not None  # noqa: S101 - key_for() checked it
                container = await asyncio.to_thread(container_of, item.recording)
                demuxer = container.demuxer if container is not None else None
                rate = self.audio.sample_rate
                pcm = await decode(item.recording, rate, what=what, demuxer=demuxer)
                engine = "recording"
            encoded, lufs = await self.encoder.encode(
                pcm, what=what, started=encoder, tail_ms=self.tail_ms(item)
            )
        finally:
            await stop_tool(encoder)
        duration_ms = encoded_duration_ms(encoded, self.audio.format)
        clip = await asyncio.to_thread(
            self.store.put,
            key,
            encoded,
            self.audio.format,
            duration_ms,
            engine=engine,
            lufs=round(lufs, 2),
            announcement=item.announcement,
            lang=item.lang,
        )
        if self.metrics is not None:
            self.metrics.render_seconds.observe(time.perf_counter() - started)
        return clip, engine

    async def render_plans(
        self,
        plans: Iterable[SlotPlan],
        *,
        force: bool = False,
        progress: Progress | None = None,
        chimes: bool = True,
    ) -> RenderSummary:
        """Render each distinct item of `plans` and the configured chimes; collect failures."""
        items = self._distinct(plans, chimes=chimes)
        summary = RenderSummary()
        total, done = len(items), 0
        if progress is not None:
            progress(0, total)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: PlanItem) -> None:
            nonlocal done
            async with gate:
                try:
                    clip, engine = await self._clip(item, force=force)
                except RenderError as exc:
                    name = f"{item.announcement}/{item.lang}" if item.lang else item.announcement
                    summary.failed.append(f"{name}: {exc}")
                    log.warning("cannot render %s: %s", name, exc)
                else:
                    if engine is None:
                        summary.cached += 1
                    else:
                        summary.rendered[engine] = summary.rendered.get(engine, 0) + 1
                    summary.audio_seconds += clip.duration_ms / 1000
                    summary.bytes += clip.size
            done += 1
            if progress is not None:
                progress(done, total)

        async with asyncio.TaskGroup() as tg:
            for item in items:
                tg.create_task(one(item), name=f"render {item.announcement}/{item.lang}")
        summary.failed.sort()
        return summary


def _distinct_items(
    plans: Iterable[SlotPlan], chime_paths: Iterable[Path | None]
) -> list[PlanItem]:
    """Every item once (a bulletin repeats across hamlets and slots), chimes if anything plays."""
    items: dict[tuple[object, ...], PlanItem] = {}
    for plan in plans:
        for item in plan.items:
            items.setdefault((item.kind, item.text, item.recording, item.lang), item)
    if items:
        for path in chime_paths:
            if path is not None:
                items.setdefault(("chime", None, path, ""), chime_item(path))
    return list(items.values())


def chime_item(path: Path) -> PlanItem:
    """A chime as a plan item: a recording without a language, named after its file."""
    return PlanItem(path.stem, path.stem, "chime", "", "chime", "normal", 0.0, recording=path)


async def speak_to_audio(
    chain: TtsChain, audio: Audio, text: str, lang: str
) -> tuple[bytes, str, int]:
    """`text` through the chain and one encode to `audio.format`, outside any store: the encoded
    bytes, the engine that spoke and the duration in ms (`broadcastd say --out`)."""
    encoder = Encoder(audio)
    started = await encoder.start(what="say")
    try:
        speech = await chain.speak(text, lang)
        data, _ = await encoder.encode(speech.pcm, what="say", started=started)
    finally:
        await stop_tool(started)
    return data, speech.engine, encoded_duration_ms(data, audio.format)


# --- encoding ---------------------------------------------------------------------------------


class Encoder:
    """Gain to the target loudness and encode once, learning how much the peak limiter takes.

    `gain_for` estimates the limiter's cost by hard clipping, which underestimates what ffmpeg's
    alimiter takes by ~0.5-1 LU on espeak-ng speech. Each limited encode's ebur128 reading updates a
    running correction, so after a batch's first clip the first encode usually lands within AIM_LU.

    The gain is applied here, to 32-bit samples with HEADROOM to spare, not in ffmpeg's arguments:
    the ffmpeg command line then does not depend on the audio, so `start()` can launch ffmpeg while
    the speech is still being synthesised and measured (ffmpeg takes ~65 ms to load; a shell
    pipeline `espeak-ng | ffmpeg` overlaps the two processes the same way).
    """

    def __init__(self, audio: Audio) -> None:
        self.audio = audio
        # measured minus intended loudness of limited encodes (EMA); starts at what espeak-ng shows
        self.limiter_bias = -0.7
        self.encodes = 0

    async def start(self, *, what: str) -> asyncio.subprocess.Process:
        """An ffmpeg waiting for `encode()`'s samples; the caller stops it with `stop_tool`."""
        return await start_tool(_encode_argv(self.audio, self.audio.sample_rate), what=what)

    async def encode(
        self,
        pcm: Pcm,
        *,
        what: str,
        started: asyncio.subprocess.Process | None = None,
        tail_ms: int = 0,
    ) -> tuple[bytes, float]:
        """Returns the encoded bytes and the loudness ebur128 measured on the way to the encoder.

        `started` (from `start()`) is used for the first encode when it expects `pcm`'s rate.
        `tail_ms` of digital silence follow the sound; ebur128's gate leaves silence out of the
        measured loudness, so the target holds for the sound itself.
        """
        silence = bytes(4 * (pcm.rate * tail_ms // 1000))  # s32 zeros
        target = self.audio.loudness_lufs
        gain = await asyncio.to_thread(gain_for, pcm, target, CEILING_DBFS)
        limited = pcm.peak_dbfs + gain > CEILING_DBFS
        if limited:
            gain -= self.limiter_bias
        if pcm.rate != self.audio.sample_rate:
            started = None
        for attempt in range(2):
            self.encodes += 1
            samples = await asyncio.to_thread(widened, pcm, gain, HEADROOM) + silence
            proc = started or await start_tool(_encode_argv(self.audio, pcm.rate), what=what)
            started = None
            data, lufs = await _encode_once(proc, samples, what=what)
            if limited and attempt == 0:
                self.limiter_bias += 0.5 * (lufs - target)
            if abs(lufs - target) <= AIM_LU:
                return data, lufs
            gain += target - lufs  # the estimate was off: correct once with the measurement
        if abs(lufs - target) <= TOLERANCE_LU:
            return data, lufs
        raise RenderError(
            f"{what}: loudness {lufs:.1f} LUFS is outside {target:g}±{TOLERANCE_LU} LUFS "
            f"(peaks limit the gain)"
        )


# s16 samples become s32 scaled by gain / HEADROOM; ffmpeg multiplies by HEADROOM back in float.
# 2**12 leaves 72 dB of gain before saturation and 19 bits of resolution at any gain.
HEADROOM = 4096


def _encode_argv(audio: Audio, rate: int) -> list[str]:
    # Peaks over -1 dBFS are limited there; with none, alimiter (latency-compensated) passes the
    # samples through bit for bit. ebur128 measures what reaches the encoder.
    limit = f"alimiter=limit={10 ** (CEILING_DBFS / 20):.4f}:level=disabled:latency=1"
    filters = f"volume={HEADROOM}:precision=float,{limit},ebur128=framelog=verbose"
    if audio.format == "mp3":
        codec = ["-c:a", "libmp3lame", "-ar", str(audio.sample_rate), "-id3v2_version", "0"]
        codec += ["-write_xing", "0", "-f", "mp3"]
    else:
        codec = ["-c:a", "libopus", "-application", "voip", "-f", "opus"]
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
        "-f", "s32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
        "-af", filters, "-ac", "1", "-b:a", audio.bitrate, *codec,
        "-map_metadata", "-1", "-fflags", "+bitexact", "pipe:1",
    ]  # fmt: skip


async def _encode_once(
    proc: asyncio.subprocess.Process, samples: bytes, *, what: str
) -> tuple[bytes, float]:
    out, err = await finish_tool(proc, "ffmpeg", samples, what=f"{what}: encode")
    found = _I_RE.findall(err.decode("utf-8", "replace"))
    if not out or not found:
        raise RenderError(f"{what}: ffmpeg produced no audio")
    return out, float(found[-1])


# --- composition ---------------------------------------------------------------------------------


def build_renderer(
    config: Config,
    metrics: Metrics | None = None,
    *,
    engines: Sequence[str] | None = None,
    store: AudioStore | None = None,
) -> Renderer:
    """The renderer for `config`; `engines` overrides `tts.engines` (the demo uses ["espeak"]),
    `store` the clip cache in `state_dir` (a preview that may not write there)."""
    chain = build_chain(config.tts, config.audio.sample_rate, metrics, engines=engines)
    store = store if store is not None else AudioStore(config.state_dir / "audio")
    return Renderer(config, store, chain, metrics)
