"""AudioOut against a real mosquitto: each clip once, clip after clip, and a clip counts as
retained only once the broker has acknowledged every one of its chunks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid

from broadcastd import protocol
from broadcastd.models import Clip
from broadcastd.transport.audioout import AudioOut
from broadcastd.transport.link import LinkSettings, MqttLink


def clip_file(tmp_path, data: bytes) -> Clip:
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"{sha}.mp3"
    path.write_bytes(data)
    return Clip(sha, path, len(data), 1000)


async def test_clips_go_out_one_after_another_and_count_as_retained_when_acked(
    tmp_path, mosquitto, new_inbox, run_link
):
    topics = protocol.Topics(f"t-{uuid.uuid4().hex[:10]}")
    seen = new_inbox()
    observer = MqttLink(
        LinkSettings.from_url(
            mosquitto.url,
            client_id=f"obs-{uuid.uuid4().hex[:8]}",
            subscriptions=((f"{topics.root}/audio/#", 1),),
        ),
        seen,
    )
    link = MqttLink(
        LinkSettings.from_url(mosquitto.url, client_id=f"c-{uuid.uuid4().hex[:8]}"), new_inbox()
    )
    clips = [clip_file(tmp_path, os.urandom(16 * protocol.CHUNK_SIZE)) for _ in range(3)]
    first, _, last = (c.sha256 for c in clips)
    log: list[tuple[str, str]] = []
    publish = link.publish

    async def logged(topic: str, payload: bytes, **kwargs: object) -> None:
        log.append(("sent", topic.split("/")[-2]))
        await publish(topic, payload, **kwargs)  # type: ignore[arg-type]

    link.publish = logged  # type: ignore[method-assign]

    class Noted(asyncio.Event):
        def __init__(self, sha: str) -> None:
            super().__init__()
            self.sha = sha

        def set(self) -> None:
            log.append(("retained", self.sha))
            super().set()

    retained = {c.sha256: Noted(c.sha256) for c in clips}
    out = AudioOut(link, topics, time.time)
    async with run_link(observer), run_link(link):
        await out.publish(clips, int(time.time()) + 600, urgent=False, retained=retained)
        assert all(e.is_set() for e in retained.values())
        for clip in clips:
            for i in range(16):
                assert await seen.wait_for(topics.audio(clip.sha256, i))
        # Published again (nothing was lost): nothing is sent, every clip counts as retained.
        log_before = len(log)
        again = {c.sha256: asyncio.Event() for c in clips}
        await out.publish(clips, int(time.time()) + 600, urgent=False, retained=again)
        assert all(e.is_set() for e in again.values())
        assert len(log) == log_before
    sent = [sha for kind, sha in log if kind == "sent"]
    assert sent == [c.sha256 for c in clips for _ in range(16)]  # clip after clip, each once
    # The first clip was retained before the last one's first chunk went out.
    assert log.index(("retained", first)) < log.index(("sent", last))
