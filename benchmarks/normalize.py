"""Normaliser benchmark: 10 kB of commune notices, normalised the way the TTS chain does it.

The text is the example commune's announcements plus number-heavy notices (dates, times, ranges,
prices, phone numbers, abbreviations), repeated to 10 240 bytes of UTF-8. Each round times one pass
over the whole text and one pass sentence by sentence (what the chain does: one announcement at a
time); the median of the rounds is printed. The target is the issue's: 10 kB in under 10 ms.

Prints `normalize: <µs> µs/sentence target=<µs for 10 kB in 10 ms>` and
`normalize 10kB: <ms> ms target=10`.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broadcastd.render.normalize import Normalizer

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
NOTICES = [
    "UBND xã Sảng Mộc thông báo lịch tiêm phòng LMLM đợt II năm 2026 từ ngày 5/12 đến 7/12.",
    "Thời gian: 7h30 - 11h00, tại nhà văn hóa thôn; mang theo sổ tiêm, CCCD.",
    "Giá lợn hơi từ 55.000 - 60.000 đ/kg, giảm 2,5% so với tháng 11.",
    "Dự báo từ 12-15/1/2027 rét đậm, nhiệt độ thấp nhất 5-7°C, vùng núi dưới 3°C.",
    "Mật độ sâu cuốn lá 20-30 con/m2, phun thuốc khi trên 50 con/m2, pha 20ml/bình 16 lít.",
    "Hạn đóng BHYT hộ gia đình là 31/12/2026, mức đóng 1.263.600 đồng/người/năm.",
    "Mọi thắc mắc liên hệ cán bộ văn hóa xã, ĐT 0912 345 678, hoặc gọi 115 khi cấp cứu.",
    "HĐND xã khóa XXI họp kỳ thứ 12 lúc 8h00 thứ 5, ngày 25/12 tại hội trường UBND xã.",
    "Lượng mưa 50-100 mm, gió giật cấp 8, tốc độ 60 km/h; không qua ngầm tràn sâu trên 0,5 m.",
    "Thu quỹ phòng chống thiên tai 10.000đ/người, hộ nghèo được miễn, hạn nộp trước 20/11.",
]
TARGET_BYTES = 10 * 1024
TARGET_MS = 10.0
ROUNDS = 21


def corpus() -> list[str]:
    sentences = list(NOTICES)
    for path in sorted((ROOT / "config" / "announcements").glob("*.yaml")):
        for announcement in yaml.safe_load(path.read_text(encoding="utf-8")):
            text = announcement.get("text", {}).get("vi")
            if text:
                sentences += [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    out: list[str] = []
    size = 0
    while size < TARGET_BYTES:
        for sentence in sentences:
            out.append(sentence)
            size += len(sentence.encode()) + 1
            if size >= TARGET_BYTES:
                break
    return out


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    sentences = corpus()
    text = " ".join(sentences)
    normalize = Normalizer({"HTX Tân Lập": "hợp tác xã Tân Lập"})
    normalize(text)  # compiles the lexicon's patterns once, as the first render of a day would
    whole = [timed(lambda: normalize(text)) for _ in range(ROUNDS)]
    each = [timed(lambda: [normalize(s) for s in sentences]) for _ in range(ROUNDS)]
    whole_ms = statistics.median(whole) * 1000
    per_sentence_us = statistics.median(each) / len(sentences) * 1e6
    target_us = TARGET_MS * 1000 / len(sentences)
    print(
        f"# {len(text.encode())} bytes, {len(sentences)} sentences: {whole_ms:.2f} ms in one "
        f"pass, {statistics.median(each) * 1000:.2f} ms sentence by sentence (median of {ROUNDS})"
    )
    print(f"normalize: {per_sentence_us:.0f} µs/sentence target={target_us:.0f}")
    print(f"normalize 10kB: {whole_ms:.2f} ms target={TARGET_MS:g}")


if __name__ == "__main__":
    main()
