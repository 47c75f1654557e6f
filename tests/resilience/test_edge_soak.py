"""Soak on the link lab's `edge` profile (64/32 kbit/s, 800 ms RTT) with the bearer dropped
every 60 s (issue 18, acceptance 3): with a `lead` computed from the bulletin's size, every
speaker has the bulletin before `play_at` and plays it exactly once, however many times its link
dropped on the way. Root only; runs under `make soak` (BROADCASTD_SOAK=1): it takes minutes.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from support.e2e import wait_for, write_commune
from support.labrun import journal_acks, lab_daemon, lab_speakers
from support.linklab import BROKER_HOST, BROKER_PORT, PROFILES, Lab

# One link lab at a time: `make test` runs in parallel workers (xdist), the lab's namespaces
# and 198.51.100.0/24 addresses are one per machine.
pytestmark = pytest.mark.xdist_group("linklab")

SPEAKERS = 4
DROP_EVERY_S = 60.0
SENTENCE = "Bà con chú ý phòng chống rét cho trâu bò, che chắn chuồng trại và dự trữ thức ăn."
TEXTS = (" ".join([SENTENCE] * 9), " ".join([SENTENCE] * 8))  # ~400 KB of speech in all
BULLETIN_BYTES = 400_000  # for the lead only: the journal has the exact size
RECONNECT_S = 10.0  # per drop: the agents' first reconnect attempt, a session, the window again


def lead_for(profile_rate: float) -> int:
    """Seconds of lead that let a speaker fetch the bulletin at the link rate, with one
    reconnect per drop that falls in that time, and half as much again for the RTTs."""
    fetch = BULLETIN_BYTES / profile_rate
    drops = math.ceil(fetch / DROP_EVERY_S) + 1
    return math.ceil(1.5 * fetch + drops * RECONNECT_S)


@pytest.mark.soak_only  # minutes on a 64 kbit/s link
async def test_edge_links_dropping_every_minute_get_the_bulletin_before_play_at_and_play_once(
    tmp_path,
):
    profile = dataclasses.replace(PROFILES["edge"], drop_every_s=DROP_EVERY_S)
    lead = lead_for(profile.down_bytes_per_s)
    e2e = write_commune(
        tmp_path,
        hamlets=2,
        nodes_per_hamlet=SPEAKERS // 2,
        # The daemon publishes at start-up (its 30 min `lead` has begun): `lead` seconds before
        # play_at, plus the few seconds the lab and the daemon take to start.
        play_in=lead + 5,
        texts=TEXTS,
        keepalive="30s",
        listen=f"{BROKER_HOST}:{BROKER_PORT}",
    )
    play_at = e2e.play_at.timestamp()
    async with (
        Lab.running(links=SPEAKERS, profile=profile) as lab,
        lab_daemon(lab, e2e, tmp_path / "daemon.log"),
        lab_speakers(lab, e2e) as speakers,
    ):

        def played_by_all() -> bool:
            return all(s.player.finished for s in speakers)

        def acked_ready() -> bool:
            return len({a.node for a in journal_acks(e2e) if a.status == "ready"}) == SPEAKERS

        await wait_for(played_by_all, lead + 120, "every speaker to play the bulletin")
        await wait_for(acked_ready, 60, "every `ready` ack in the journal")
        acks = journal_acks(e2e)
        drops = sum(s.link.control.drops for s in speakers)
        plays = {s.id: len({p for p, _, _ in s.player.plays}) for s in speakers}
        resent = {s.id: s.agent.fetcher.duplicates for s in speakers}
    ready = {a.node: a.ts for a in acks if a.status == "ready"}
    print(f"lead {lead} s, {drops} drops, ready {play_at - max(ready.values()):.0f} s early")
    assert drops >= SPEAKERS  # every link dropped at least once during the lead
    assert set(ready) == {s.id for s in speakers}
    assert all(ts < play_at for ts in ready.values()), (ready, play_at)
    assert plays == dict.fromkeys(plays, 1)  # each played the bulletin, once
    print(f"chunks received twice after reconnects: {resent}")
