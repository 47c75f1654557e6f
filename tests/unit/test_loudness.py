"""The in-process loudness meter against ffmpeg's ebur128, and gain carried without clipping."""

from __future__ import annotations

import re
import struct
import subprocess

import pytest

from broadcastd.render.loudness import Pcm, integrated_loudness, parse_wav, widened
from broadcastd.render.renderer import HEADROOM

TEXTS = [
    "Thông báo tiêm phòng cho gia súc vào sáng thứ hai tại nhà văn hóa thôn.",
    "Họp thôn lúc bảy giờ tối nay.",
]


def ebur128(wav: bytes) -> float:
    err = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-f", "wav", "-i", "pipe:0",
         "-af", "ebur128", "-f", "null", "-"],
        input=wav, capture_output=True, check=True,
    ).stderr.decode()  # fmt: skip
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", err)[-1])


@pytest.mark.parametrize("text", TEXTS)
def test_meter_agrees_with_ebur128_on_speech(text):
    wav = subprocess.run(
        ["espeak-ng", "-v", "vi", "--stdout"], input=text.encode(), capture_output=True, check=True
    ).stdout
    pcm = parse_wav(wav)
    assert pcm is not None
    assert abs(integrated_loudness(pcm.data, pcm.rate) - ebur128(wav)) <= 0.3


def test_widened_carries_gain_past_full_scale():
    pcm = Pcm(struct.pack("<3h", 30000, -30000, 100), 22050)
    out = struct.unpack("<3i", widened(pcm, 12.0, HEADROOM))
    gain = 10 ** (12 / 20)
    # back at full scale (x headroom / 2**31) peaks sit 10.2 dB over it, unclipped for the limiter;
    # resolution stays 19 bits of full scale
    for got, sample in zip(out, (30000, -30000, 100), strict=True):
        assert got * HEADROOM / 2**31 == pytest.approx(sample / 32768 * gain, abs=2**-19)
