"""The length of an encoded clip, read from its own bytes (no ffprobe per clip)."""

from __future__ import annotations

import struct

from broadcastd.errors import RenderError

_MP3_BITRATES = {
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1 layer III
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2/2.5 layer III
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def encoded_duration_ms(data: bytes, fmt: str) -> int:
    return _mp3_duration_ms(data) if fmt == "mp3" else _opus_duration_ms(data)


def _mp3_duration_ms(data: bytes) -> int:
    """Sum of layer III frame durations, walking the frame headers."""
    pos, samples, rate = 0, 0, 0
    while pos + 4 <= len(data):
        (header,) = struct.unpack_from(">I", data, pos)
        version, layer = (header >> 19) & 3, (header >> 17) & 3
        bitrate_i, rate_i = (header >> 12) & 15, (header >> 10) & 3
        if (
            header >> 21 != 0x7FF
            or layer != 1
            or version == 1
            or bitrate_i in (0, 15)
            or rate_i == 3
        ):
            pos += 1  # not a layer III frame header: resynchronise
            continue
        kbps = _MP3_BITRATES[3 if version == 3 else 2][bitrate_i]
        rate = _MP3_RATES[version][rate_i]
        per_frame = 1152 if version == 3 else 576
        samples += per_frame
        pos += per_frame // 8 * kbps * 1000 // rate + ((header >> 9) & 1)
    if not samples:
        raise RenderError("encoded mp3 holds no frames")
    return int(samples * 1000 / rate + 0.5)


def _opus_duration_ms(data: bytes) -> int:
    """Last Ogg page's granule position minus the OpusHead pre-skip, at Opus's 48 kHz."""
    head = data.find(b"OpusHead")
    last = data.rfind(b"OggS")
    if head < 0 or last < 0 or last + 14 > len(data):
        raise RenderError("encoded opus has no Ogg/Opus headers")
    (pre_skip,) = struct.unpack_from("<H", data, head + 10)
    (granule,) = struct.unpack_from("<q", data, last + 6)
    samples: int = granule - pre_skip
    return max(0, round(samples / 48))
