"""Re-publishing after a reconnect sends the journaled bytes unchanged and skips a row that is no
longer a valid playlist instead of stopping the re-publisher."""

from __future__ import annotations

import logging
import sqlite3
from types import SimpleNamespace
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broadcastd import protocol
from broadcastd.controller.dispatch import Dispatcher
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics

if TYPE_CHECKING:
    from pathlib import Path

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the publish log line shows times in the commune's zone


class Link:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False, **_: object):
        self.sent.append((topic, payload, retain))


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path | None:
        path = self.root / sha256
        return path if path.exists() else None


def playlist(pid: str, hamlet: str, sha256: str) -> protocol.Signed[protocol.Playlist]:
    return protocol.seal(
        protocol.Playlist(
            commune="sm",
            hamlet=hamlet,
            id=pid,
            slot="noon",
            play_at=int(NOW) + 600,
            expires_at=int(NOW) + 1800,
            priority="normal",
            issued_at=int(NOW),
            items=(protocol.PlaylistItem(sha256, 5, 1, 1000, "Tin", "vi", "news"),),
            seq=1,
        ),
        KEY,
    )


async def test_republish_sends_journaled_bytes_and_skips_a_broken_row(tmp_path, caplog):
    clip = tmp_path / ("ab" * 32)
    clip.write_bytes(b"audio")
    good = playlist("20270115-noon-ban-a-1", "ban-a", "ab" * 32)
    broken = playlist("20270115-noon-ban-b-1", "ban-b", "cd" * 32)
    journal = Journal.open(tmp_path / "j.sqlite3", clock=lambda: NOW)
    await journal.record_dispatch(good)
    await journal.record_dispatch(broken)
    journal.close()
    with sqlite3.connect(tmp_path / "j.sqlite3") as conn:
        conn.execute("UPDATE dispatches SET envelope='{\"v\":1}' WHERE hamlet='ban-b'")
    conn.close()
    journal = Journal.open(tmp_path / "j.sqlite3", clock=lambda: NOW)
    link = Link()
    dispatcher = Dispatcher(
        SimpleNamespace(config=SimpleNamespace(commune=SimpleNamespace(id="sm", tz=TZ))),  # type: ignore[arg-type]
        link=link,
        journal=journal,
        renderer=SimpleNamespace(store=Store(tmp_path)),  # type: ignore[arg-type]
        key=KEY,
        metrics=Metrics(),
        clock=lambda: NOW,
    )
    with caplog.at_level(logging.ERROR):
        await dispatcher.republish()
    journal.close()
    playlists = [(t, p, r) for t, p, r in link.sent if t.endswith("/playlist")]
    assert playlists == [("bcast/v1/sm/hamlet/ban-a/playlist", good.wire, True)]
    assert any(t == f"bcast/v1/sm/audio/{'ab' * 32}/0" for t, _, _ in link.sent)
    assert "20270115-noon-ban-b-1 not re-published" in caplog.text
