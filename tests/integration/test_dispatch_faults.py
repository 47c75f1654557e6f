"""Dispatch under faults: speakers offline at play_at (acceptance 3), broker SIGKILLed 5 times (4).

Everything is real: the daemon's embedded mosquitto (its supervised child), espeak-ng, the journal,
the reference agents. A "crash" cancels an agent's tasks without a clean disconnect, as a power
cut would; a restart is a new agent process on the same cache directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import TYPE_CHECKING

from support.e2e import E2E, wait_for, write_commune

if TYPE_CHECKING:
    from broadcastd.controller.daemon import Daemon
    from broadcastd.journal.schema import AckRow
    from broadcastd.sim.fleet import Fleet

CATCH_UP_S = 10.0


def _acks(daemon: Daemon, pid: str, node: str) -> list[AckRow]:
    return [a for a in daemon.journal.acks_for(pid) if a.node == node]


def _statuses(daemon: Daemon, pid: str, node: str) -> list[str]:
    return [a.status for a in _acks(daemon, pid, node)]


async def _crash(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _until_clock(e2e: E2E, at: float) -> None:
    await asyncio.sleep(max(0.0, at - e2e.clock()))


def _plays(fleets: list[Fleet], pid: str, node: str) -> int:
    return sum(f.plays_of(pid).get(node, 0) for f in fleets if node in f.agents)


async def test_offline_at_play_at_plays_late_before_expiry_and_acks_expired_after(tmp_path):  # noqa: PLR0915 - one timeline, told in order
    e2e = write_commune(
        tmp_path, hamlets=2, nodes_per_hamlet=4, play_in=6.0, catch_up=f"{CATCH_UP_S:.0f}s"
    )
    play_at = e2e.play_at.timestamp()
    expires_at = play_at + CATCH_UP_S
    steady = ["h00-n0", "h00-n1", "h01-n0", "h01-n1"]
    crash_back_early = "h00-n3"  # prefetched, crashed, back after play_at, before expiry
    crash_back_late = "h00-n2"  # prefetched, crashed, back after expiry
    first_seen_late = "h01-n2"  # never online until after play_at, before expiry
    never_in_time = "h01-n3"  # never online until after expiry
    async with e2e.running(fleet=False) as run:
        daemon = run.daemon
        day = e2e.play_at.date()

        def start(nodes: list[str]) -> asyncio.Task[None]:
            return run.start(e2e.fleet(nodes=nodes))

        def pid_of(hamlet: str) -> str:
            rows = {r.hamlet: r.id for r in daemon.journal.dispatches_for(day, "noon")}
            return rows.get(hamlet, "")

        start(steady)
        early_task = start([crash_back_early])
        late_task = start([crash_back_late])

        def prefetched() -> bool:
            pid = pid_of("h00")
            return all(
                "ready" in _statuses(daemon, pid, n) for n in (crash_back_early, crash_back_late)
            )

        await wait_for(prefetched, 20, "both doomed h00 agents acked ready")
        assert e2e.clock() < play_at - 0.5, "prefetch must finish before play_at for this test"
        await _crash(early_task)
        await _crash(late_task)

        await _until_clock(e2e, play_at + 2.5)
        start([crash_back_early])
        start([first_seen_late])

        def late_played() -> bool:
            return all(
                "played" in _statuses(daemon, pid_of(h), n)
                for h, n in (("h00", crash_back_early), ("h01", first_seen_late))
            )

        await wait_for(late_played, 10, "the agents back before expiry played")
        assert e2e.clock() < expires_at

        await _until_clock(e2e, expires_at + 1)
        start([crash_back_late])
        start([never_in_time])
        h00, h01 = pid_of("h00"), pid_of("h01")
        await wait_for(
            lambda: "expired" in _statuses(daemon, h00, crash_back_late),
            10,
            "the agent back after expiry acked expired",
        )
        await asyncio.sleep(1.5)  # a wrong late play would show up here
        await daemon.journal.flush()
        fleets = list(run.fleets)

        for node in steady:
            pid = h00 if node.startswith("h00") else h01
            assert _plays(fleets, pid, node) == 1, node
            playing = [a for a in _acks(daemon, pid, node) if a.status == "playing"]
            assert [a.detail for a in playing] == [""], node  # on time
        for node, pid in ((crash_back_early, h00), (first_seen_late, h01)):
            assert _plays(fleets, pid, node) == 1, node
            assert _statuses(daemon, pid, node).count("played") == 1, node
            (late,) = [a for a in _acks(daemon, pid, node) if a.status == "playing"]
            assert late.detail.startswith("late "), (node, late.detail)
            assert 1 <= int(late.detail.split()[1].rstrip("s")) < CATCH_UP_S
        statuses = _statuses(daemon, h00, crash_back_late)
        assert "playing" not in statuses
        assert "played" not in statuses
        assert statuses.count("expired") == 1
        assert _plays(fleets, h00, crash_back_late) == 0
        # offline through the whole window: the broker expired the retained playlist, nothing plays
        assert _plays(fleets, h01, never_in_time) == 0
        assert "played" not in _statuses(daemon, h01, never_in_time)


async def test_broker_sigkilled_five_times_during_dispatch_every_agent_plays_once(tmp_path):
    e2e = write_commune(tmp_path, hamlets=5, nodes_per_hamlet=2, play_in=16.0)
    async with e2e.running() as run:
        daemon, fleet = run.daemon, run.fleet
        broker = daemon.broker
        assert broker is not None
        killed: list[int] = []
        started = time.monotonic()
        for n in range(5):
            await wait_for(broker.running, 10, "the daemon restarted its mosquitto")
            # the first kill lands while the slot is still being rendered and published; later
            # ones once clients have reconnected and the dispatch has moved on a little
            await asyncio.sleep(1.0 if n else 0.2)
            pid = broker.pid
            assert pid is not None
            assert pid not in killed
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        kill_window = time.monotonic() - started
        assert e2e.clock() < e2e.play_at.timestamp(), "the kills must land before play_at"
        day = e2e.play_at.date()
        played_everywhere = run.slot_played(day, hamlets=5, acks=10)
        await wait_for(played_everywhere, 40, "10 played acks after 5 broker kills")
        await asyncio.sleep(1.5)  # a duplicate play would show up here
        await daemon.journal.flush()
        assert broker.restarts >= 5
        assert kill_window < 15
        rows = {r.hamlet: r for r in daemon.journal.dispatches_for(day, "noon")}
        for node_id, sim in fleet.agents.items():
            row = rows[sim.spec.hamlet]
            assert fleet.plays_of(row.id)[node_id] == 1, node_id  # none twice, none missed
            env = json.loads(row.envelope)
            assert [p[1] for p in sim.player.plays] == [i["sha256"] for i in env["items"]]
            statuses = _statuses(daemon, row.id, node_id)
            assert statuses.count("played") == 1, (node_id, statuses)
