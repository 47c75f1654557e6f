"""Render benchmark: uncached espeak render vs the raw `espeak-ng | ffmpeg` pipeline; a cached pass.

Both sides run the same 10 texts in the same run, one clip at a time (like for like: no parallelism
across clips on either side). Within a clip both overlap espeak-ng with ffmpeg's start-up: the shell
pipeline by its nature, ours by starting the encoder while the speech is made. Ours also measures
loudness, limits peaks, verifies with ebur128, hashes, fsyncs and indexes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broadcastd.config import Config
from broadcastd.models import PlanItem, SlotPlan
from broadcastd.render.renderer import Renderer
from broadcastd.render.store import AudioStore
from broadcastd.render.tts import EspeakEngine, TtsChain

TEXTS = [
    "Thông báo tiêm phòng cho gia súc vào sáng thứ hai tại nhà văn hóa thôn.",
    "Đề nghị các hộ gia đình chú ý phòng chống lũ lụt và sạt lở đất.",
    "Ủy ban nhân dân xã tổ chức họp dân vào tối thứ năm tuần này.",
    "Hướng dẫn bà con gieo cấy lúa vụ xuân đúng lịch thời vụ.",
    "Trạm y tế xã khám sức khỏe miễn phí cho người cao tuổi.",
    "Bà con lưu ý không đốt nương rẫy trong mùa khô hanh.",
    "Thông báo lịch thu gom rác thải tại các thôn bản.",
    "Phòng chống dịch tả lợn châu Phi, không mua bán lợn bệnh.",
    "Các hộ gia đình đăng ký nhận giống ngô tại hợp tác xã.",
    "Nhắc nhở phụ huynh đưa trẻ đến trường đúng giờ.",
]
ROUNDS = 3


def config(state: Path) -> Config:
    return Config.model_validate(
        {
            "commune": {"id": "bench", "name": "Bench"},
            "signing": {"private_key_file": str(state / "key")},
            "state_dir": str(state),
            "slots": {"noon": {"at": "11:30"}},
            "tts": {"engines": ["espeak"]},
            "hamlets": [{"id": "h", "name": "H", "households": 1}],
        }
    )


def plan(tag: str) -> list[SlotPlan]:
    at = dt.datetime(2026, 11, 23, 11, 30, tzinfo=dt.UTC)
    items = tuple(
        PlanItem(f"a{i}", "t", "c", "vi", "tts", "normal", 4.0, text=f"{t} {tag}")
        for i, t in enumerate(TEXTS)
    )
    return [SlotPlan(at.date(), "noon", "h", at, at, at, items)]


def raw_pipeline(out: Path, tag: str) -> float:
    started = time.perf_counter()
    for i, text in enumerate(TEXTS):
        subprocess.run(  # noqa: S602 - the baseline IS the shell pipeline a person types
            f"espeak-ng -v vi --stdout | ffmpeg -nostdin -loglevel error -y -f wav -i pipe:0 "
            f"-ac 1 -ar 22050 -b:a 32k {out / f'{tag}-{i}.mp3'}",
            shell=True,
            input=f"{text} {tag}".encode(),
            check=True,
        )
    return time.perf_counter() - started


def ours(renderer: Renderer, tag: str) -> float:
    started = time.perf_counter()
    summary = asyncio.run(renderer.render_plans(plan(tag), chimes=False))
    elapsed = time.perf_counter() - started
    if summary.failed or summary.rendered != {"espeak": len(TEXTS)}:
        raise SystemExit(f"render failed: {summary}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = config(root)
        renderer = Renderer(
            cfg, AudioStore(root / "audio"), TtsChain([EspeakEngine(10)], 22050), concurrency=1
        )
        ratios, raws, mine = [], [], []
        for r in range(ROUNDS):  # interleaved so both sides see the same machine load
            raw = raw_pipeline(root, f"r{r}")
            our = ours(renderer, f"r{r}")
            raws.append(raw)
            mine.append(our)
            ratios.append(our / raw)
        cached = []
        for _ in range(5):
            fresh = Renderer(cfg, AudioStore(root / "audio"), TtsChain([EspeakEngine(10)], 22050))
            started = time.perf_counter()
            summary = asyncio.run(fresh.render_plans(plan("r0"), chimes=False))
            cached.append(time.perf_counter() - started)
            if summary.cached != len(TEXTS) or any(fresh.chain.calls.values()):
                raise SystemExit(f"second render was not fully cached: {summary}")
        print(
            f"# 10 clips: raw pipeline {statistics.median(raws) * 1000:.0f} ms, "
            f"ours {statistics.median(mine) * 1000:.0f} ms (median of {ROUNDS})"
        )
        print(f"render uncached: ratio={statistics.median(ratios):.2f} target=1.3")
        print(f"render cached: {statistics.median(cached) * 1000:.1f} ms target=50")


if __name__ == "__main__":
    main()
