"""Recordings as phones make them, made here from espeak-ng speech with ffmpeg.

Debian's ffmpeg decodes AMR but has no AMR encoder (libopencore-amrnb's encoder is left out of
its build, `ffmpeg -codecs` lists amr_nb as decode-only), so `amr_nb` writes an AMR-NB file
directly: the `#!AMR` magic and 12.2 kbit/s frames (a header byte and 31 bytes of codec
parameters each). Any parameter bits are valid AMR, so seeded pseudo-random frames decode to a
few seconds of buzzing sound through the same ffmpeg `amrnb` decoder a phone's file goes through.
It is not speech, but it is a genuine AMR-NB bitstream; what is tested is the decoding.
"""

from __future__ import annotations

import random
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

SPEECH = "Thông báo của ủy ban nhân dân xã về việc tiêm phòng cho gia súc."
AMR_MAGIC = b"#!AMR\n"
AMR_122_HEADER = 0x3C  # frame type 7 (12.2 kbit/s), quality bit set
AMR_122_BYTES = 31  # 244 bits of parameters, padded to bytes
AMR_FRAME_S = 0.02


def speech_wav(path: Path, text: str = SPEECH, *, repeat: int = 1) -> Path:
    """espeak-ng's Vietnamese speech of `text` (said `repeat` times) as a WAV file."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "vi", "--stdout", " ".join([text] * repeat)],
        capture_output=True,
        check=True,
    ).stdout
    path.write_bytes(wav)
    return path


def transcode(wav: Path, out: Path, *codec: str) -> Path:
    """`wav` encoded by ffmpeg with `codec` arguments into `out` (its container from the suffix)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), *codec, str(out)],
        check=True,
    )
    return out


def zalo_m4a(out: Path, *, repeat: int = 1) -> Path:
    """AAC in M4A with the index after the audio (ffmpeg's default, and a phone's)."""
    wav = speech_wav(out.with_suffix(".src.wav"), repeat=repeat)
    return transcode(wav, out, "-ac", "1", "-ar", "44100", "-c:a", "aac", "-b:a", "48k")


def amr_nb(out: Path, *, seconds: float = 3.0, seed: int = 7) -> Path:
    """A raw AMR-NB file of `seconds` of 12.2 kbit/s frames (see the module docstring)."""
    rng = random.Random(seed)
    frames = round(seconds / AMR_FRAME_S)
    body = b"".join(
        bytes([AMR_122_HEADER, *(rng.getrandbits(8) for _ in range(AMR_122_BYTES))])
        for _ in range(frames)
    )
    out.write_bytes(AMR_MAGIC + body)
    return out


def tone_mp3(out: Path, seconds: float, bitrate: str) -> Path:
    """A 300 Hz tone as CBR MP3 without the Xing header that states a VBR file's length."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=f=300:d={seconds}",
         "-ar", "44100", "-c:a", "libmp3lame", "-b:a", bitrate, "-write_xing", "0",
         "-id3v2_version", "0", str(out)],
        check=True,
    )  # fmt: skip
    return out
