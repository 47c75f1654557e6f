"""`broadcastd say [-c FILE] [--lang vi] [--out FILE.mp3] TEXT`: what a TTS engine will be given.

Prints the normalised text on one line on stdout, exactly what the engines get; places where the
normaliser had to guess (an acronym in no lexicon, an address, a symbol left out) go to stderr.
Without `-c` only the built-in abbreviations and the northern number style apply; with it, the
commune's `tts.lexicon`, `tts.numbers` and voices too. `--out` also renders the text through the
normal chain (gTTS, then espeak-ng, as `tts.engines` says), loudness-normalised like every clip:
`.mp3` is MP3, `.opus` or `.ogg` Opus.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.config import Audio, Tts, load_config
from broadcastd.errors import BroadcastdError, UsageError
from broadcastd.render.normalize import Normalizer
from broadcastd.render.renderer import speak_to_audio
from broadcastd.render.tts import build_chain

if TYPE_CHECKING:
    import argparse

FORMATS = {".mp3": "mp3", ".opus": "opus", ".ogg": "opus"}


def run(args: argparse.Namespace) -> int:
    tts, audio, lang = Tts(), Audio(), args.lang or "vi"
    if args.config is not None:
        config = load_config(args.config).config
        tts, audio, lang = config.tts, config.audio, args.lang or config.commune.default_language
    if lang not in tts.languages:
        spoken = ", ".join(sorted(tts.languages))
        raise UsageError(f"--lang: no configured TTS engine speaks {lang!r} (spoken: {spoken})")
    fmt = None
    if args.out is not None:
        fmt = FORMATS.get(args.out.suffix.lower())
        if fmt is None:
            raise UsageError(f"--out: name the file .mp3, .opus or .ogg, got: {str(args.out)!r}")
    text = " ".join(args.text)
    normalizer = Normalizer(tts.lexicon, tts.numbers)
    said, doubts = normalizer.explain(text, lang)
    if not said:
        raise UsageError("nothing to say: the text has no words")
    print(said)
    for doubt in dict.fromkeys(doubts):
        what = f"read as {doubt.spoken!r}" if doubt.spoken else "left out"
        print(f"broadcastd say: note: {doubt.written!r} {what} ({doubt.reason})", file=sys.stderr)
    if args.out is not None and fmt is not None:
        _render(args.out, tts, audio.model_copy(update={"format": fmt}), text, lang)
    return 0


def _render(out: Path, tts: Tts, audio: Audio, text: str, lang: str) -> None:
    chain = build_chain(tts, audio.sample_rate)
    data, engine, duration_ms = asyncio.run(speak_to_audio(chain, audio, text, lang))
    _write(out, data)
    print(f"broadcastd say: wrote {out} ({engine}, {duration_ms / 1000:.1f} s)", file=sys.stderr)


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a half-written clip is worse than none."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        Path(tmp).replace(path)
    except OSError as exc:
        raise BroadcastdError(f"cannot write {path}: {exc.strerror}") from None
