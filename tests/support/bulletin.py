"""A small commune with chimes, a recording and spoken items, and the clips of the playlist the
daemon's dispatcher publishes for it (real espeak-ng and ffmpeg; the MQTT link is a recorder)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from broadcastd import protocol
from broadcastd.config import load_config
from broadcastd.controller.dispatch import Dispatcher
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics
from broadcastd.render.renderer import build_renderer

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 11, 30)
SPOKEN = "Thông báo tiêm phòng cho gia súc vào sáng thứ hai."
COMMUNE = f"""\
commune: {{id: thu, name: "Xã Thử"}}
signing: {{private_key_file: state/key}}
state_dir: state
slots: {{noon: {{at: "11:30"}}, afternoon: {{at: "17:00"}}}}
audio: {{gap: 1s, intro: chimes/intro.wav, outro: chimes/outro.wav}}
tts: {{engines: [espeak]}}
hamlets:
  - {{id: ban-a, name: Bản A, households: 10, languages: [vi, dao]}}
  - {{id: ban-b, name: Bản B, households: 10}}
announcements:
  - {{id: tiem, title: Tiêm phòng, text: {{vi: "{SPOKEN}"}}, audio: {{dao: vaccine-dao.ogg}},
     slots: [noon], hamlets: [ban-a]}}
  - {{id: hop, title: Họp thôn, text: {{vi: "Mời bà con họp thôn tối nay."}}, slots: [noon]}}
"""


class Recorder:
    """Stands in for the MQTT link: keeps what the dispatcher publishes."""

    def __init__(self) -> None:
        self.sent: dict[str, bytes] = {}

    async def publish(self, topic: str, payload: bytes, **_: object) -> None:
        self.sent[topic] = payload


def write_commune(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "audio" / "chimes", tmp_path / "chimes")
    shutil.copy(ROOT / "audio" / "recordings" / "vaccine-dao.ogg", tmp_path)
    (tmp_path / "state").mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(COMMUNE, encoding="utf-8")
    return path


async def published_clips(config_path: Path) -> list[bytes]:
    """The clips of ban-a's noon playlist, as the daemon's dispatcher publishes it."""
    loaded = load_config(config_path)
    config = loaded.config
    before = dt.datetime.combine(DAY, dt.time(11), tzinfo=config.commune.tz).timestamp()
    link = Recorder()
    journal = Journal.open(config.state_dir / "journal.sqlite3", clock=lambda: before)
    renderer = build_renderer(config, Metrics())
    try:
        dispatcher = Dispatcher(
            loaded,
            link=link,
            journal=journal,
            renderer=renderer,
            key=protocol.generate_private_key(config.signing.private_key_file),
            metrics=Metrics(),
            clock=lambda: before,
        )
        await dispatcher.dispatch_slot(DAY, "noon")
    finally:
        journal.close()
    envelope = json.loads(link.sent["bcast/v1/thu/hamlet/ban-a/playlist"])
    return [renderer.store.read(item["sha256"]) for item in envelope["items"]]
