"""A renderer on a small commune's config, its plan items, and a renderer process to SIGKILL.

usage: python tests/support/rendering.py STATE_DIR  (renders `KILL_CLIPS` espeak-ng clips, one at
a time, into STATE_DIR/audio; `spawn_render` starts it so a test can kill it mid-way)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.config import Config
from broadcastd.models import PlanItem, SlotPlan
from broadcastd.render.renderer import Renderer
from broadcastd.render.store import AudioStore
from broadcastd.render.tts import EspeakEngine, TtsChain

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broadcastd.metrics import Metrics
    from broadcastd.render.tts import TtsEngine

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
CHIMES = ROOT / "audio" / "chimes"
TEXTS = [
    "Xin chào bà con thôn Bản Chương.",
    "Thông báo tiêm phòng cho gia súc vào sáng thứ hai.",
    "Đề nghị các hộ gia đình chú ý phòng chống lũ lụt.",
    "Họp thôn lúc bảy giờ tối nay tại nhà văn hóa.",
]


def make_config(state: Path, **audio: object) -> Config:
    return Config.model_validate(
        {
            "commune": {"id": "sang-moc", "name": "Xã Sảng Mộc"},
            "signing": {"private_key_file": str(state / "key")},
            "state_dir": str(state),
            "slots": {"noon": {"at": "11:30"}},
            "audio": {
                "intro": str(CHIMES / "intro.wav"),
                "outro": str(CHIMES / "outro.wav"),
                **audio,
            },
            "tts": {"engines": ["espeak"], "timeout": "5s"},
            "hamlets": [{"id": "ban-chuong", "name": "Bản Chương", "households": 87}],
        }
    )


def item(i: int, text: str) -> PlanItem:
    return PlanItem(f"ann-{i}", f"Tin {i}", "general", "vi", "tts", "normal", 3.0, text=text)


def plans(items: list[PlanItem]) -> list[SlotPlan]:
    at = dt.datetime(2026, 11, 23, 11, 30, tzinfo=dt.UTC)
    return [
        SlotPlan(at.date(), "noon", hamlet, at, at, at, tuple(items))
        for hamlet in ("ban-chuong", "na-lay")  # the same items twice: rendered once
    ]


def renderer(
    state: Path, engines: Sequence[TtsEngine], metrics: Metrics | None = None, **audio: object
) -> Renderer:
    config = make_config(state, **audio)
    chain = TtsChain(engines, config.audio.sample_rate, metrics)
    return Renderer(config, AudioStore(state / "audio"), chain, metrics)


def kill_items() -> list[PlanItem]:
    """The 16 distinct clips the renderer process makes: enough time to kill it mid-way."""
    return [item(i, f"{t} {j}") for j in range(4) for i, t in enumerate(TEXTS)]


KILL_CLIPS = len(TEXTS) * 4


def spawn_render(state: Path) -> subprocess.Popen[bytes]:
    """Start this script on `state`: it renders `kill_items()` one clip at a time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(HERE), str(state)], env=env)


def main() -> None:
    r = renderer(Path(sys.argv[1]), [EspeakEngine(5.0)])
    r.concurrency = 1
    asyncio.run(r.render_plans(plans(kill_items()), chimes=False))


if __name__ == "__main__":
    main()
