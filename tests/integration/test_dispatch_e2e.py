"""Dispatch end to end: daemon + embedded mosquitto + reference agents, one slot."""

from __future__ import annotations

import asyncio
import json

from support.e2e import wait_for, write_commune


async def test_ten_hamlets_two_agents_each_play_the_slot_exactly_once(tmp_path):
    e2e = write_commune(tmp_path, hamlets=10, nodes_per_hamlet=2, play_in=8.0)
    async with e2e.running() as run:
        daemon, fleet = run.daemon, run.fleet
        day = e2e.play_at.date()
        played_everywhere = run.slot_played(day, hamlets=10, acks=20)
        await wait_for(played_everywhere, 60, "20 played acks journaled")
        # The audio went out over the bulk links, which the generated ACL lets in.
        assert all(link.connects >= 1 for link in daemon.bulk.links)
        await asyncio.sleep(1.5)  # a duplicate play would show up here
        rows = daemon.journal.dispatches_for(day, "noon")
        by_hamlet = {r.hamlet: r for r in rows}
        assert sorted(by_hamlet) == [f"h{i:02d}" for i in range(10)]
        for node_id, sim in fleet.agents.items():
            pid = by_hamlet[sim.spec.hamlet].id
            assert fleet.plays_of(pid)[node_id] == 1, node_id
            statuses = [a.status for a in daemon.journal.acks_for(pid) if a.node == node_id]
            assert statuses.count("played") == 1
            assert statuses.index("ready") < statuses.index("playing") < statuses.index("played")
            # what played is the audio the envelope names, verified by sha256 on the node
            env = json.loads(by_hamlet[sim.spec.hamlet].envelope)
            assert [p[1] for p in sim.player.plays] == [i["sha256"] for i in env["items"]]


async def test_the_same_announcement_sent_twice_plays_twice(tmp_path):
    """Staff repeat a warning word for word: it is a new announcement, not a duplicate."""
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, play_in=600.0)
    async with e2e.running() as run:
        daemon, fleet = run.daemon, run.fleet
        request = {"cmd": "announce", "text": "Nước sông đang lên, bà con chú ý.", "now": True}
        first = await daemon.ops.handle(dict(request))
        second = await daemon.ops.handle(dict(request))
        ids = first["playlists"] + second["playlists"]
        assert len(set(ids)) == 2

        def both_played() -> bool:
            plays = fleet.plays_of
            return all(plays(pid).get("h00-n0") == 1 for pid in ids)

        await wait_for(both_played, 30, "both announcements played once each")
