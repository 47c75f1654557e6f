"""Issue 18 on an emulated 3G link (support.linklab, root only): the daemon and its mosquitto in
one network namespace, the speaker behind a veth shaped to 256 kbit/s with 400 ms RTT.

An emergency issued while the speaker is in the middle of a routine download must play before
that download finishes (it used to wait behind every chunk the broker had queued for the
speaker), and the routine download must then finish without a chunk being sent twice. The
timed bound (5 s + emergency bytes / bandwidth) is measured by benchmarks/weaklink.py.
"""

from __future__ import annotations

import json
import time

import pytest
from support.e2e import wait_for, write_commune
from support.labrun import emergency, journal_acks, lab_daemon, lab_speakers
from support.linklab import BROKER_HOST, BROKER_PORT, PROFILES, Lab

from broadcastd.journal.store import Journal

# One link lab at a time: `make test` runs in parallel workers (xdist), the lab's namespaces
# and 198.51.100.0/24 addresses are one per machine.
pytestmark = pytest.mark.xdist_group("linklab")

# ~130 s of espeak-ng speech: ~8 chunks at 32 kbit/s, ~16 s on the shaped link
ROUTINE = " ".join(
    ["Bà con chú ý phòng chống rét cho trâu bò, che chắn chuồng trại và dự trữ thức ăn."] * 24
)
WARNING = "Lũ quét đang về, bà con sơ tán ngay."
OVERHEAD = 16 * 1024  # envelopes, MQTT headers, acks' PUBACKs: far less than one 64 KiB chunk


def _clip_bytes(e2e, playlist_ids: set[str]) -> int:
    journal = Journal.open(e2e.config.state_dir / "journal.sqlite3", readonly=True)
    try:
        rows = [journal.dispatch(pid) for pid in playlist_ids]
    finally:
        journal.close()
    return sum(item["bytes"] for row in rows if row for item in json.loads(row.items))


async def test_emergency_jumps_a_routine_download_on_a_shaped_link(tmp_path):
    async with Lab.running(links=1, profile=PROFILES["3g-weak"].calm()) as lab:
        e2e = write_commune(
            tmp_path,
            hamlets=1,
            nodes_per_hamlet=1,
            play_in=900,
            texts=(ROUTINE,),
            listen=f"{BROKER_HOST}:{BROKER_PORT}",
        )
        async with (
            lab_daemon(lab, e2e, tmp_path / "daemon.log"),
            lab_speakers(lab, e2e) as [speaker],
        ):
            fetcher = speaker.agent.fetcher

            def downloading() -> bool:
                return any(len(f.part.present) >= 1 for f in fetcher.active.values())

            await wait_for(downloading, 60, "the routine download under way")
            [routine_sha] = fetcher.active
            assert len(fetcher.active[routine_sha].missing) >= 4, "the download is nearly done"
            issued = time.time()  # the journal's received_at is the daemon's real time
            urgent = await emergency(e2e, WARNING)

            def acked(status: str, *, emergency: bool) -> bool:
                return any(
                    a.status == status and (a.playlist in urgent) == emergency
                    for a in journal_acks(e2e)
                )

            await wait_for(lambda: acked("ready", emergency=False), 120, "the routine `ready`")
            await wait_for(lambda: acked("played", emergency=True), 30, "the emergency `played`")
            acks = journal_acks(e2e)

        routine = {a.playlist for a in acks if a.playlist not in urgent}
        first = {(a.playlist, a.status): a.received_at for a in reversed(acks)}
        [routine_id] = routine
        [urgent_id] = urgent
        print(
            f"emergency playing {first[urgent_id, 'playing'] - issued:.1f} s after the announce,"
            f" routine ready {first[routine_id, 'ready'] - issued:.1f} s after it"
        )
        assert first[urgent_id, "playing"] < first[routine_id, "ready"], acks
        carried = speaker.link.control.bytes_down
        clips = _clip_bytes(e2e, routine | set(urgent))
        assert clips <= carried < clips + OVERHEAD, (carried, clips)
