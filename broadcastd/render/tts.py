"""Text-to-speech engines and the fall-through chain (DESIGN.md §2, `tts`).

`GttsEngine` runs gTTS in a worker thread, always with a timeout. Its endpoint is Google Translate
unless `base_url` (or the BROADCASTD_GTTS_URL environment variable, read by `build_chain`; for
tests and benchmarks only) points it at another server, e.g. a fake one on loopback.
`EspeakEngine` pipes the text into `espeak-ng -v vi -s 150 --stdout`. Both take their voice per
language from `tts.voices`. `TtsChain` normalises the text (render/normalize: numbers, dates,
abbreviations as words), then tries engines in order; output must decode to audible sound or the
next engine is tried. After a remote engine fails it is skipped for a back-off period (5 min,
doubling up to 1 h): a dead uplink costs one timeout, not one per clip.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from broadcastd.config.schema import DEFAULT_VOICE
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
from broadcastd.render.normalize import Normalizer

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from broadcastd.config.schema import EspeakVoice, GttsVoice, Tts
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
    remote: bool  # failures of a remote engine start a back-off

    def voice_for(self, lang: str) -> str:
        """Part of the render key: a different voice is a different clip."""
        ...

    async def synthesize(self, text: str, lang: str) -> bytes: ...


class GttsEngine:
    """Google Translate TTS via gTTS, in a thread, with `timeout` on connect and on every read."""

    name = "gtts"
    remote = True

    def __init__(
        self,
        timeout: float,
        *,
        base_url: str | None = None,
        voices: Mapping[str, GttsVoice] | None = None,
    ) -> None:
        self.timeout = timeout
        self.base_url = base_url
        self.voices = dict(voices or {})

    def _voice(self, lang: str) -> GttsVoice:
        return self.voices.get(lang, DEFAULT_VOICE.gtts)

    def voice_for(self, lang: str) -> str:
        v = self._voice(lang)
        where = f"@{self.base_url}" if self.base_url else ""
        return f"gtts:{v.tld}{':slow' if v.slow else ''}{where}"

    async def synthesize(self, text: str, lang: str) -> bytes:
        v = self._voice(lang)
        fetch = functools.partial(
            _gtts_fetch, text, lang, self.timeout, self.base_url, v.tld, slow=v.slow
        )
        try:
            # requests' timeout bounds connect and each read, not the whole reply: bound it here.
            # A trickling server can keep the worker thread busy until its next read times out.
            return await asyncio.wait_for(asyncio.to_thread(fetch), self.timeout)
        except TimeoutError:
            raise TtsTimeoutError(f"gtts: no reply within {self.timeout:g}s") from None


def _gtts_fetch(  # noqa: PLR0913 - one call site, all of them gTTS's own arguments
    text: str, lang: str, timeout: float, base_url: str | None, tld: str, *, slow: bool
) -> bytes:
    cls = _gtts_class()
    tts = cls(text, lang=lang, tld=tld, slow=slow, lang_check=False, timeout=timeout)
    tts.base_url = base_url
    buf = io.BytesIO()
    try:
        tts.write_to_fp(buf)
    # gTTSError, requests errors, AssertionError on odd text: for the chain, all mean "failed"
    except Exception as exc:  # noqa: BLE001 - any failure of the remote engine falls through
        if _timed_out(exc):
            raise TtsTimeoutError(f"gtts: no reply within {timeout:g}s") from None
        raise RenderError(f"gtts: {exc}") from None
    return buf.getvalue()


def _timed_out(exc: BaseException) -> bool:
    """Whether requests gave up waiting for the server, under whatever gTTS raised instead (it
    raises its own error inside its handler, so requests' is the context). Both clocks run for
    `timeout`: a stalled server is a timeout whichever notices first (a loaded loop is late)."""
    from requests.exceptions import Timeout  # noqa: PLC0415 - loaded with gTTS, only for it

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Timeout):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
    """`espeak-ng -v <voice>[+<variant>] -s <rate> --stdout`, text on stdin; killed after
    `timeout`."""

    name = "espeak"
    remote = False

    def __init__(
        self,
        timeout: float,
        *,
        binary: str = "espeak-ng",
        voices: Mapping[str, EspeakVoice] | None = None,
    ) -> None:
        self.timeout = timeout
        self.binary = binary
        self.voices = dict(voices or {})

    def argv(self, lang: str) -> list[str]:
        v = self.voices.get(lang, DEFAULT_VOICE.espeak)
        voice = (v.voice or lang) + (f"+{v.variant}" if v.variant else "")
        return [self.binary, "-v", voice, "-s", str(v.rate), "--stdout"]

    def voice_for(self, lang: str) -> str:
        return " ".join(self.argv(lang)[1:-1])

    async def synthesize(self, text: str, lang: str) -> bytes:
        argv = self.argv(lang)
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

    def __init__(  # noqa: PLR0913 - normaliser, clock and back-off are keyword-only knobs
        self,
        engines: Sequence[TtsEngine],
        rate: int,
        metrics: Metrics | None = None,
        *,
        normalizer: Normalizer | None = None,
        now: Callable[[], float] = time.monotonic,
        backoff: float = BACKOFF_S,
        max_backoff: float = MAX_BACKOFF_S,
    ) -> None:
        if not engines:
            raise RenderError("no TTS engine configured")
        self.engines = tuple(engines)
        self.normalizer = normalizer or Normalizer()
        # every render-key lookup normalises its text: remember the last few hundred
        self.spoken = functools.lru_cache(maxsize=512)(self.normalizer.__call__)
        self.rate = rate
        self.metrics = metrics
        self.now = now
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.calls: Counter[str] = Counter()  # synthesize() calls per engine, for tests and reports
        self._skip_until: dict[str, float] = {}
        self._next_backoff: dict[str, float] = {}

    def signature(self, lang: str) -> tuple[str, ...]:
        """What identifies this chain's output in a render key: the engines and their voices."""
        return tuple(e.voice_for(lang) for e in self.engines)

    def backing_off(self, engine: str) -> float:
        """Seconds left before `engine` is tried again (0 if it is tried now)."""
        return max(0.0, self._skip_until.get(engine, 0.0) - self.now())

    @property
    def preferred(self) -> str:
        """The engine tried first: what every clip should be spoken by when it answers."""
        return self.engines[0].name

    async def speak(self, text: str, lang: str, *, preferred_only: bool = False) -> Speech:
        """Speak `text` as normalised (`spoken(text, lang)` is exactly what the engines get): the
        first engine's speech that decodes to sound; with `preferred_only`, only the first engine
        is asked (to replace a fallback's clip, never by another fallback)."""
        text = self.spoken(text, lang)
        if not text:
            raise RenderError("nothing to speak: the text has no words")
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


def build_chain(
    tts: Tts,
    rate: int,
    metrics: Metrics | None = None,
    *,
    engines: Sequence[str] | None = None,
) -> TtsChain:
    """The chain `tts` describes (`engines` overrides `tts.engines`; the demo uses ["espeak"])."""
    timeout = tts.timeout.total_seconds()
    built: list[TtsEngine] = []
    for name in engines if engines is not None else tts.engines:
        if name == "gtts":
            gtts_voices = {lang: v.gtts for lang, v in tts.voices.items()}
            url = os.environ.get(GTTS_URL_ENV) or None
            built.append(GttsEngine(timeout, base_url=url, voices=gtts_voices))
        elif name == "espeak":
            espeak_voices = {lang: v.espeak for lang, v in tts.voices.items()}
            built.append(EspeakEngine(timeout, voices=espeak_voices))
        else:
            raise RenderError(f"unknown TTS engine {name!r} (expected gtts or espeak)")
    normalizer = Normalizer(tts.lexicon, tts.numbers)
    return TtsChain(built, rate, metrics, normalizer=normalizer)
