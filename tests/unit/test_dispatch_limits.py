"""The dispatcher never sends a packet the broker would close its connection for (issue 23 item
2: the broker's maximum packet is a chunk or an envelope plus headers), and asks the broker to
save what it published, since the broker's own saves are now time-based."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING

from support.communes import thu

from broadcastd import protocol
from broadcastd.config import load_config
from broadcastd.controller.controls import Controls
from broadcastd.controller.dispatch import Dispatcher
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics
from broadcastd.models import Clip, PlanItem, SlotPlan

if TYPE_CHECKING:
    from pathlib import Path

CONFIG = thu(hamlets=2)
DAY = dt.date(2026, 11, 24)


class Renderer:
    """Writes each item's text as its 'clip': the dispatcher only needs bytes and a sha256."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.store = self

    async def clip_for(self, item: PlanItem) -> Clip:
        data = (item.text or item.title).encode()
        sha = hashlib.sha256(data).hexdigest()
        path = self.directory / sha
        path.write_bytes(data)
        return Clip(sha, path, len(data), 1000)

    def path_for(self, sha256: str) -> Path | None:
        path = self.directory / sha256
        return path if path.exists() else None


class Link:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish(  # noqa: PLR0913 - mirrors MqttLink.publish
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        expiry: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - mirrors MqttLink.publish
    ) -> None:
        del retain, qos, expiry, timeout
        self.sent.append((topic, payload))


def plan(config, hamlet: str, items: int, title: str) -> SlotPlan:
    at = dt.datetime.combine(DAY, dt.time(11, 30), tzinfo=config.commune.tz)
    return SlotPlan(
        date=DAY,
        slot="noon",
        hamlet=hamlet,
        play_at=at,
        expires_at=at + dt.timedelta(minutes=20),
        publish_at=at - dt.timedelta(minutes=30),
        items=tuple(
            PlanItem(f"ann-{n}", title, "news", "vi", "tts", "normal", 5.0, f"Tin số {n}.")
            for n in range(items)
        ),
    )


async def test_an_envelope_over_the_wire_limit_is_journaled_as_skipped_never_sent(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    protocol.generate_private_key(tmp_path / "key")
    loaded = load_config(path, probe_media=False)
    config = loaded.config
    now = dt.datetime.combine(DAY, dt.time(11, 0), tzinfo=config.commune.tz).timestamp()
    journal = Journal.open(tmp_path / "j.sqlite3", clock=lambda: now)
    link, saves = Link(), []
    (tmp_path / "clips").mkdir()
    dispatcher = Dispatcher(
        loaded,
        link=link,
        journal=journal,
        renderer=Renderer(tmp_path / "clips"),  # type: ignore[arg-type]
        key=protocol.load_private_key(tmp_path / "key"),
        metrics=Metrics(),
        clock=lambda: now,
        persist=lambda: saves.append(1),
    )
    try:
        # 200 items with 300-character titles: ~120 KB of JSON, twice what a node accepts.
        huge = plan(config, "ban-a", 200, "Thông báo " * 30)
        small = plan(config, "ban-b", 2, "Tin ngắn")
        published = await dispatcher.dispatch_plans([huge, small])
        await journal.flush()
        assert [p.hamlet for p in published] == ["ban-b"]
        assert all(len(payload) <= protocol.MAX_ENVELOPE_BYTES for _, payload in link.sent)
        assert not [t for t, _ in link.sent if "/hamlet/ban-a/" in t]
        # only the small playlist's clips went out: the huge one's audio is not left retained
        assert len([t for t, _ in link.sent if "/audio/" in t]) == 2
        (skip,) = journal.skips_between(DAY, DAY)
        assert (skip.hamlet, skip.slot) == ("ban-a", "noon")
        assert "over the 65536-byte limit (200 items" in skip.reason
        assert [r.hamlet for r in journal.dispatches_for(DAY)] == ["ban-b"]
        assert saves == [1], "the broker was not asked to save the published playlist"
        controls = Controls(
            config.commune.id,
            link=link,
            journal=journal,
            key=protocol.load_private_key(tmp_path / "key"),
            seq=dispatcher.seq,
            clock=lambda: now,
            persist=lambda: saves.append(1),
        )
        await controls.stop(["ban-b"])
        assert saves == [1, 1], "a stop queued for an offline node must be saved too"
    finally:
        journal.close()
