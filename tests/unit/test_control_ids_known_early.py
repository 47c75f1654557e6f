"""A control's id is known before its first publish: a node of the first hamlet acks it while
the daemon still sends the control to the others, and that ack must count (it was refused as
`unknown_playlist`, and `volume` listed the speaker as not acked)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.controller.controls import Controls
from broadcastd.controller.playlists import SeqCounter
from broadcastd.journal.store import Journal

if TYPE_CHECKING:
    from pathlib import Path

NOW = 1_796_000_000.0
HAMLETS = ["ban-a", "ban-b", "ban-c"]


class KnownAtPublish:
    """Stands in for the MQTT link: notes, as each control goes out, what the daemon would
    answer an ack for it at that moment."""

    def __init__(self) -> None:
        self.controls: Controls | None = None
        self.known: list[frozenset[str] | None] = []

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
        del topic, retain, qos, expiry, timeout
        assert self.controls is not None
        self.known.append(self.controls.hamlets_of(json.loads(payload)["id"]))


async def test_stop_and_volume_ids_are_known_before_the_first_publish(tmp_path: Path) -> None:
    protocol.generate_private_key(tmp_path / "key")
    journal = Journal.open(tmp_path / "j.sqlite3", clock=lambda: NOW)
    link = KnownAtPublish()
    controls = Controls(
        "thu",
        link=link,
        journal=journal,
        key=protocol.load_private_key(tmp_path / "key"),
        seq=SeqCounter(lambda: NOW),
        clock=lambda: NOW,
    )
    link.controls = controls
    try:
        await controls.stop(HAMLETS)
        await controls.volume(dict.fromkeys(HAMLETS), 60)
    finally:
        journal.close()
    assert link.known == [frozenset(HAMLETS)] * 6
