"""Recordings as officials make them on phones, told apart by their bytes, never their names.

A Zalo voice message is AAC in M4A; phone recorders write M4A, 3GP or raw AMR; messengers send
Opus in Ogg; browsers record Opus in WebM; anything else arrives as MP3 or WAV. The container is
recognised from the first bytes (`sniff`) and ffmpeg is told to read exactly that (`-f`): a file
that is really an HLS playlist or a concat script, which would make ffmpeg open other files, is
refused before any tool sees it. `examine` then asks ffprobe what the file claims and decodes at
most the allowed length to learn what it holds: a header can claim a short duration for hours
of audio, and decoding hours would fill the daemon's memory.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.errors import RenderError
from broadcastd.render.loudness import InvalidAudioError, decode, file_input

if TYPE_CHECKING:
    from pathlib import Path

FFPROBE_TIMEOUT_S = 10.0
ACCEPTED = "AAC/M4A, 3GP, AMR, Opus/Ogg, WebM, MP3 or WAV"
SNIFF_BYTES = 12
_CHECK_RATE = 8000  # the length check decodes at telephone rate: cheap, and enough to hear sound


class RecordingTooLongError(RenderError):
    """A recording longer than `audio.max_recording`."""


@dataclass(frozen=True, slots=True)
class Container:
    label: str  # what a reply or the journal calls it
    demuxer: str  # ffmpeg's reader for it (`-f`)
    ext: str  # the suffix a stored copy gets


@dataclass(frozen=True, slots=True)
class Examined:
    container: Container
    codec: str  # ffprobe's codec name: aac, amr_nb, opus, mp3, pcm_s16le, ...
    seconds: float  # what a decode found, not what the header claims


_M4A = Container("M4A", "mov", "m4a")
_3GP = Container("3GP", "mov", "3gp")
_WAV = Container("WAV", "wav", "wav")
_ADTS = Container("AAC", "aac", "aac")
_MP3 = Container("MP3", "mp3", "mp3")
_AMR = Container("AMR", "amr", "amr")
_MAGIC = (
    (b"#!AMR\n", _AMR),
    (b"#!AMR-WB\n", _AMR),
    (b"OggS", Container("Ogg", "ogg", "ogg")),
    (b"\x1a\x45\xdf\xa3", Container("WebM", "matroska", "webm")),
    (b"ID3", _MP3),
)


def sniff(head: bytes) -> Container | None:
    """The container `head` (a file's first SNIFF_BYTES) starts, if it is one phones write."""
    if head[4:8] == b"ftyp":
        return _3GP if head[8:11] in (b"3gp", b"3g2") else _M4A
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return _WAV
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync: layer bits 00 are AAC in ADTS, anything else is MP3
        return _ADTS if head[1] & 0x06 == 0 else _MP3
    return next((found for magic, found in _MAGIC if head.startswith(magic)), None)


def container_of(path: Path) -> Container | None:
    try:
        with path.open("rb") as fh:
            return sniff(fh.read(SNIFF_BYTES))
    except OSError:
        return None


async def examine(path: Path, *, max_seconds: float, what: str) -> Examined:
    """What `path` holds; RenderError with one line saying why it cannot be played, and
    RecordingTooLongError when it lasts longer than `max_seconds`."""
    container = container_of(path)
    if container is None:
        raise InvalidAudioError(f"{what}: not a recording in a format accepted here ({ACCEPTED})")
    codec, claimed = await _probe(path, container, what=what)
    if claimed > max_seconds:
        raise RecordingTooLongError(_too_long(what, claimed, max_seconds))
    # A little past the limit is decoded, so a file that only claims to be short shows it.
    pcm = await decode(
        path, _CHECK_RATE, what=what, demuxer=container.demuxer, max_seconds=max_seconds + 1
    )
    if pcm.seconds > max_seconds:
        raise RecordingTooLongError(_too_long(what, pcm.seconds, max_seconds, more=True))
    return Examined(container, codec, pcm.seconds)


def _too_long(what: str, seconds: float, limit: float, *, more: bool = False) -> str:
    length = f"longer than {_clock(limit)}" if more else f"{_clock(seconds)} long"
    return f"{what}: {length}; audio.max_recording allows {_clock(limit)}"


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


async def _probe(path: Path, container: Container, *, what: str) -> tuple[str, float]:
    """(codec, claimed seconds) from ffprobe, reading the file only as `container`."""
    argv = [
        "ffprobe", "-v", "error", "-protocol_whitelist", "file", "-f", container.demuxer,
        "-show_entries", "format=duration:stream=codec_type,codec_name", "-of", "json",
        file_input(path),
    ]  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        raise RenderError(f"{what}: cannot start ffprobe: {exc}") from None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), FFPROBE_TIMEOUT_S)
    except TimeoutError:
        raise InvalidAudioError(f"{what}: ffprobe could not read it in time") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    try:
        info = json.loads(out or b"{}")
        streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
        seconds = float(info.get("format", {}).get("duration", 0.0))
    except (ValueError, TypeError, AttributeError):
        streams, seconds = [], 0.0
    if proc.returncode != 0 or not streams:
        raise InvalidAudioError(
            f"{what}: not decodable audio (ffprobe finds no audio stream in this {container.label})"
        )
    return str(streams[0].get("codec_name", "unknown")), seconds
