"""The logs tell what happened on air (issue 17, item 6).

Through the real chain (daemon, embedded mosquitto, reference agents): the daemon logs every
publish, approval, cancel, stop, volume and reload; each node logs every verify, fetch, play and
ack with the playlist id and what it says; times inside log lines are the commune's local time
with its offset, never Unix seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from support.e2e import wait_for, write_commune

UNIX_SECONDS = re.compile(r"(?<![\d.])1[6-9]\d{8}(?![\d])")


async def test_daemon_and_nodes_log_every_step_with_ids_titles_and_local_times(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="broadcastd")
    e2e = write_commune(
        tmp_path,
        hamlets=2,
        nodes_per_hamlet=1,
        extra=("emergency:", "  approvals: 2", "  operators: [an, binh]"),
    )
    tz = e2e.config.commune.tz
    day = e2e.play_at.date()
    async with e2e.running() as run:
        daemon = run.daemon
        await wait_for(run.slot_played(day, hamlets=2, acks=2), 60, "the slot to air")
        (slot_pl, _) = daemon.journal.dispatches_for(day, "noon")
        flood = {"cmd": "announce", "text": "Lũ quét, bà con lên cao ngay!"}
        pending = await daemon.ops.handle({**flood, "priority": "emergency", "operator": "an"})
        approved = await daemon.ops.handle(
            {"cmd": "approve", "id": pending["request"], "operator": "binh"}
        )
        await daemon.ops.handle({"cmd": "cancel", "id": slot_pl.id, "operator": "an"})
        await daemon.ops.handle({"cmd": "stop", "hamlets": "h01", "operator": "an"})
        volume = await daemon.controls.volume({"h00": None}, 60)
        assert await daemon.reload()

        def emergency_acked() -> bool:
            return all(
                any(a.status == "played" for a in daemon.journal.acks_for(pid))
                for pid in approved["playlists"]
            )

        await wait_for(emergency_acked, 30, "the emergency to play")

    ours = [r for r in caplog.records if r.name.startswith("broadcastd")]
    text = "\n".join(r.getMessage() for r in ours)
    raw = [r.getMessage() for r in ours if UNIX_SECONDS.search(r.getMessage())]
    assert not raw, raw

    plays_at = dt.datetime.fromtimestamp(slot_pl.play_at, tz).isoformat(sep=" ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:00\+07:00", plays_at)
    pid, title = slot_pl.id, "Tin 0 / Tin 1"
    # the daemon: publish, approval, cancel, stop, volume, reload
    assert (
        f'published playlist {pid} "{title}" to hamlet h00 (noon, normal): plays at {plays_at}'
        in text
    )
    assert f"operator request: id {pending['request']}, operator an" in text
    assert f"operator approve: id {pending['request']}, operator binh, requested_by an" in text
    for emergency in approved["playlists"]:
        assert f"published playlist {emergency} " in text
    assert f"cancel {pid} sent to h00 as cancel-" in text
    assert "stop sent to h01 as stop-" in text
    assert f"volume to 60 sent to h00 as {volume}" in text
    assert "config reloaded: 2 hamlets, 2 announcements" in text
    # the node: verify, fetch, play, every ack
    node = f'node h00-n0: playlist {pid} "{title}"'
    assert f"{node} verified (noon, normal): plays at {plays_at}, expires " in text
    assert re.search(r'fetching clip [0-9a-f]{12} "Tin 0": \d+ of \d+ chunks', text)
    assert re.search(r"clip [0-9a-f]{12} fetched and verified \(\d+ bytes\)", text)
    for step in (
        "accepted (ack received)",
        "all audio fetched and verified (ack ready)",
        "on air (ack playing)",
        "played to the end (ack played)",
    ):
        assert f"{node}: {step}" in text, step
