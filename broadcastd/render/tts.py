"""Text-to-speech engines and the fall-through chain (DESIGN.md §2, `tts`).

`GttsEngine` runs gTTS in a worker thread, always with a timeout. Its endpoint is Google Translate
unless `base_url` (or the BROADCASTD_GTTS_URL environment variable, read by `build_renderer`; for
tests and benchmarks only) points it at another server, e.g. a fake one on loopback.
`EspeakEngine` pipes the text into `espeak-ng -v vi --stdout`. `TtsChain` tries engines in order;
output must decode to audible sound or the next engine is tried. After a remote engine fails it is
skipped for a back-off period (5 min, doubling up to 1 h): a dead uplink costs one timeout, not one
per clip.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from broadcastd.errors import RenderError
from broadcastd.render.loudness import (
    InvalidAudioError,
    Pcm,
    ToolTimeoutError,
    check_sound,
    decode,
    measured,
    parse_wav,
    run_tool,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from broadcastd.metrics import Metrics

log = logging.getLogger(__name__)

GTTS_URL_ENV = "BROADCASTD_GTTS_URL"
BACKOFF_S = 300.0
MAX_BACKOFF_S = 3600.0


class TtsTimeoutError(RenderError):
    """An engine did not answer within the configured timeout."""


class TtsEngine(Protocol):
    """Speaks text; returns encoded audio bytes (any format ffmpeg reads) or raises RenderError."""

    name: str
    voice: str  # part of the render key: a different voice is a different clip
    remote: bool  # failures of a remote engine start a back-off

    async def synthesize(self, text: str, lang: str) -> bytes: ...


class GttsEngine:
    """Google Translate TTS via gTTS, in a thread, with `timeout` on connect and on every read."""

    name = "gtts"
    remote = True

    def __init__(self, timeout: float, *, base_url: str | None = None) -> None:
        self.timeout = timeout
        self.base_url = base_url
        self.voice = f"gtts:{base_url}" if base_url else "gtts"

    async def synthesize(self, text: str, lang: str) -> bytes:
        fetch = functools.partial(_gtts_fetch, text, lang, self.timeout, self.base_url)
        try:
            # requests' timeout bounds connect and each read, not the whole reply: bound it here.
            # A trickling server can keep the worker thread busy until its next read times out.
            return await asyncio.wait_for(asyncio.to_thread(fetch), self.timeout)
        except TimeoutError:
            raise TtsTimeoutError(f"gtts: no reply within {self.timeout:g}s") from None


def _gtts_fetch(text: str, lang: str, timeout: float, base_url: str | None) -> bytes:
    cls = _gtts_class()
    tts = cls(text, lang=lang, lang_check=False, timeout=timeout)
    tts.base_url = base_url
    buf = io.BytesIO()
    try:
        tts.write_to_fp(buf)
    # gTTSError, requests errors, AssertionError on odd text: for the chain, all mean "failed"
    except Exception as exc:  # noqa: BLE001 - any failure of the remote engine falls through
        raise RenderError(f"gtts: {exc}") from None
    return buf.getvalue()


@functools.cache
def _gtts_class() -> Any:
    from gtts import gTTS  # noqa: PLC0415 - requests is slow to import; only gTTS users pay for it

    class RedirectableGtts(gTTS):  # type: ignore[misc]
        """gTTS whose requests go to `base_url`, when set, instead of translate.google.com."""

        base_url: str | None = None

        def _prepare_requests(self) -> list[Any]:
            prepared: list[Any] = super()._prepare_requests()
            if self.base_url:
                for request in prepared:
                    path = request.url.split("/", 3)[3]  # after scheme://host/
                    request.url = self.base_url.rstrip("/") + "/" + path
            return prepared

    return RedirectableGtts


class EspeakEngine:
    """`espeak-ng -v <voice> --stdout`, text on stdin; killed after `timeout`."""

    name = "espeak"
    remote = False

    def __init__(self, timeout: float, *, binary: str = "espeak-ng", voice: str = "vi") -> None:
        self.timeout = timeout
        self.binary = binary
        self.voice = voice

    async def synthesize(self, text: str, lang: str) -> bytes:
        voice = self.voice if lang == "vi" else lang
        argv = [self.binary, "-v", voice, "--stdout"]
        try:
            out, _ = await run_tool(argv, text.encode(), what="espeak", limit_s=self.timeout)
        except ToolTimeoutError:
            raise TtsTimeoutError(f"espeak: no audio within {self.timeout:g}s") from None
        return out


@dataclass(frozen=True, slots=True)
class Speech:
    pcm: Pcm
    engine: str


class TtsChain:
    """Tries each engine in order; the first one whose output decodes to sound wins."""

    def __init__(  # noqa: PLR0913 - clock and back-off are keyword-only knobs for tests
        self,
        engines: Sequence[TtsEngine],
        rate: int,
        metrics: Metrics | None = None,
        *,
        now: Callable[[], float] = time.monotonic,
        backoff: float = BACKOFF_S,
        max_backoff: float = MAX_BACKOFF_S,
    ) -> None:
        if not engines:
            raise RenderError("no TTS engine configured")
        self.engines = tuple(engines)
        self.rate = rate
        self.metrics = metrics
        self.now = now
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.calls: Counter[str] = Counter()  # synthesize() calls per engine, for tests and reports
        self._skip_until: dict[str, float] = {}
        self._next_backoff: dict[str, float] = {}

    @property
    def signature(self) -> tuple[str, ...]:
        """What identifies this chain's output in a render key: the engines and their voices."""
        return tuple(e.voice for e in self.engines)

    def backing_off(self, engine: str) -> float:
        """Seconds left before `engine` is tried again (0 if it is tried now)."""
        return max(0.0, self._skip_until.get(engine, 0.0) - self.now())

    @property
    def preferred(self) -> str:
        """The engine tried first: what every clip should be spoken by when it answers."""
        return self.engines[0].name

    async def speak(self, text: str, lang: str, *, preferred_only: bool = False) -> Speech:
        """The first engine's speech that decodes to sound; with `preferred_only`, only the
        first engine is asked (to replace a fallback's clip, never by another fallback)."""
        errors: list[str] = []
        for engine in self.engines[:1] if preferred_only else self.engines:
            if engine.remote and self.backing_off(engine.name) > 0:
                self._count(engine.name, "skipped")
                errors.append(
                    f"{engine.name}: skipped for {self.backing_off(engine.name):.0f}s more"
                )
                continue
            self.calls[engine.name] += 1
            try:
                pcm = await self._attempt(engine, text, lang)
            except TtsTimeoutError as exc:
                self._failed(engine, "timeout", str(exc), errors)
            except InvalidAudioError as exc:
                self._failed(engine, "invalid", str(exc), errors)
            except RenderError as exc:
                self._failed(engine, "failed", str(exc), errors)
            else:
                self._count(engine.name, "ok")
                self._next_backoff.pop(engine.name, None)
                return Speech(pcm, engine.name)
        raise RenderError("no TTS engine could speak it (" + "; ".join(errors) + ")")

    async def _attempt(self, engine: TtsEngine, text: str, lang: str) -> Pcm:
        data = await engine.synthesize(text, lang)
        what = f"{engine.name} output"
        wav = parse_wav(data)
        if wav is not None and wav.rate == self.rate:
            # espeak-ng's WAV needs no ffmpeg pass: measured in-process, off the event loop
            wav = await asyncio.to_thread(measured, wav)
            check_sound(wav, what=what)
            return wav
        return await decode(data, self.rate, what=what)

    def _failed(self, engine: TtsEngine, result: str, message: str, errors: list[str]) -> None:
        self._count(engine.name, result)
        errors.append(message)
        log.warning("tts %s %s: %s", engine.name, result, message)
        if engine.remote and self.backing_off(engine.name) == 0:
            # Only a wave's first failure opens the back-off; concurrent ones must not double it.
            pause = self._next_backoff.get(engine.name, self.backoff)
            self._skip_until[engine.name] = self.now() + pause
            self._next_backoff[engine.name] = min(pause * 2, self.max_backoff)
            log.warning("tts %s: skipping it for %.0fs", engine.name, pause)

    def _count(self, engine: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.tts_renders_total.labels(engine=engine, result=result).inc()
