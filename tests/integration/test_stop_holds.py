"""Issue 17.1 through the real chain: a stop holds for speakers that were offline when it came.

Daemon, embedded mosquitto and reference agents. The daily bulletin is dispatched and ready on
the speakers; an announcement is on air; `broadcastd stop --all` silences it. One speaker was
offline with the bulletin already accepted, another had never connected: both come back before
the bulletin's play_at, and neither plays anything, the old bulletin included.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

from support.e2e import wait_for, write_commune

from broadcastd import cli

PLAY_IN_S = 30.0  # the bulletin's play_at: after the stop, with time to reconnect before it
OFFLINE = "h00-n1"  # accepted the bulletin, then went offline before the stop
NEVER = "h01-n1"  # offline throughout: connects for the first time after the stop


async def test_announce_stop_all_then_offline_nodes_connect_and_play_nothing(tmp_path):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=PLAY_IN_S)
    day = e2e.play_at.date()
    online = [n for n in e2e.node_ids if n not in (OFFLINE, NEVER)]
    async with e2e.running(fleet={"nodes": online, "player_speed": 60.0}) as run:
        daemon = run.daemon
        offline_fleet = e2e.fleet(nodes=[OFFLINE])
        offline_task = run.start(offline_fleet)
        noon: list[str] = []

        def bulletin_ready() -> bool:
            noon[:] = [r.id for r in daemon.journal.dispatches_for(day, "noon")]
            ready = {
                a.node for p in noon for a in daemon.journal.acks_for(p) if a.status == "ready"
            }
            return len(noon) == 2 and ready >= {*online, OFFLINE}

        await wait_for(bulletin_ready, 20, "the bulletin ready on every connected speaker")
        offline_fleet.stop()
        await asyncio.wait_for(offline_task, 10)

        def cli_run(*argv: str) -> int:
            return cli.run([*argv, "-c", str(e2e.config_path)])

        assert await asyncio.to_thread(cli_run, "announce", "--now", "--text", "Họp thôn") == 0
        announced = [
            r.id for r in daemon.journal.dispatches_for(day) if r.slot.startswith("announce-")
        ]

        def on_air(status: str, detail: str = "") -> set[str]:
            return {
                a.node
                for pid in announced
                for a in daemon.journal.acks_for(pid)
                if a.status == status and detail in a.detail
            }

        await wait_for(lambda: on_air("playing") == set(online), 20, "the announcement on air")
        assert await asyncio.to_thread(cli_run, "stop", "--all") == 0
        await wait_for(
            lambda: on_air("failed", "stopped by stop-") == set(online), 5, "silence everywhere"
        )

        returning = e2e.fleet(nodes=[OFFLINE, NEVER])
        run.start(returning)
        await wait_for(
            lambda: all(daemon.registry.state(n) == "online" for n in (OFFLINE, NEVER)),
            10,
            "the offline speakers back",
        )
        # The bulletin the offline speaker had accepted is refused as soon as it hears the stop.
        await wait_for(
            lambda: any(
                a.node == OFFLINE and a.status == "failed" and a.detail.startswith("stopped by")
                for pid in noon
                for a in daemon.journal.acks_for(pid)
            ),
            10,
            "the returning speaker to drop the stopped bulletin",
        )
        # ... and nothing plays when its play_at comes.
        await wait_for(lambda: e2e.clock() > e2e.play_at.timestamp() + 3, 40, "past play_at")
        for fleet in run.fleets:
            for node, sim in fleet.agents.items():
                played = [pid for pid, _, _ in sim.player.plays if pid in noon]
                assert played == [], (node, played)
        assert returning.agents[NEVER].player.plays == []
        assert returning.agents[OFFLINE].player.plays == []
        for pid in [*noon, *announced]:
            row = daemon.journal.dispatch(pid)
            assert row is not None
            assert row.cancelled_at is not None  # never re-published after a reconnect
        # A slot dispatched again (as after a restart) publishes nothing it stopped.
        assert await daemon.dispatcher.dispatch_slot(day, "noon") == []

    conn = sqlite3.connect(e2e.config.state_dir / "journal.sqlite3")
    stops = [json.loads(d) for (d,) in conn.execute("SELECT detail FROM events WHERE kind='stop'")]
    skips = conn.execute("SELECT reason FROM skips WHERE slot='noon'").fetchall()
    conn.close()
    assert len(stops) == 1
    assert set(stops[0]["withdrawn"]) == {*noon, *announced}
    assert any("was cancelled" in reason for (reason,) in skips), skips  # the stop, journaled
