"""Soak: simulated speakers with 5% message loss and random disconnects over simulated days.

One warp clock is shared by the daemon and the fleet: it runs `SPEEDUP`x between slots and at
real speed for a few seconds around each play_at, so agents' real-time ticks can be judged on
the 2 s lateness target. The daemon's APScheduler follows real time only, so this test runs the
daemon with `scheduling=False` and drives each slot through its queue
(`daemon.queue.put_nowait(SlotDue(...))`) 30 simulated minutes before play_at - the configured
`lead`. Make test: 12 nodes over 6 simulated hours (one slot). Soak: 60 nodes, 48 hours, four
slots (noon and afternoon, two days).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import statistics
import time

from support.e2e import TZ, FleetArgs, write_commune
from support.soak import SOAK, count

from broadcastd.controller.dispatch import SlotDue

SPEEDUP = 2000.0
PRE_S, POST_S = 4.0, 6.0  # real-speed window around each play_at, simulated = real seconds
LEAD_S = 1800
# Real seconds the 30-minute lead lasts. In the field the lead is ~120 times an agent's 15 s
# stalled-chunk refetch; here the refetch is scaled down with the lead (REFETCH_S) so a chunk lost
# to the simulated loss late in the lead is still fetched again several times before play_at.
LEAD_REAL_S = 20.0
REFETCH_S = 2.0


class WarpClock:
    """Simulated time as a piecewise-linear function of real elapsed time."""

    def __init__(self, start: float, slots: list[float]) -> None:
        self.real0 = time.monotonic()
        self.knots: list[tuple[float, float]] = [(0.0, start)]  # (real elapsed, simulated)
        for s in slots:
            r, t = self.knots[-1]
            r += (s - LEAD_S - t) / SPEEDUP
            self.knots += [
                (r, s - LEAD_S),
                (r + LEAD_REAL_S, s - PRE_S),  # the lead: time to fetch, refetch lost chunks
                (r + LEAD_REAL_S + PRE_S + POST_S, s + POST_S),
            ]
        self.reals = [k[0] for k in self.knots]

    def at(self, real: float) -> float:
        i = bisect.bisect_right(self.reals, real) - 1
        r0, t0 = self.knots[i]
        if i + 1 < len(self.knots):
            r1, t1 = self.knots[i + 1]
            return t0 + (real - r0) * (t1 - t0) / (r1 - r0)
        return t0 + (real - r0) * SPEEDUP

    def __call__(self) -> float:
        return self.at(time.monotonic() - self.real0)

    async def until(self, sim: float) -> None:
        while self() < sim:  # noqa: ASYNC110 - polls a warped clock; no event to wait on
            await asyncio.sleep(0.02)


async def test_soak_every_online_node_plays_each_slot_late_under_two_seconds(tmp_path):  # noqa: PLR0915 - one scenario, read top to bottom
    hours = 48 if SOAK else 6
    e2e = write_commune(
        tmp_path,
        hamlets=count(4, 10),
        nodes_per_hamlet=count(3, 6),
        play_in=600.0,
        texts=("Bà con chú ý.",),
    )
    text = e2e.config_path.read_text(encoding="utf-8").splitlines()
    slots_yaml = [
        "slots:",
        "  noon: {at: '11:30', max_duration: 15m, lead: 30m, catch_up: 20m}",
        "  afternoon: {at: '17:00', max_duration: 15m, lead: 30m, catch_up: 20m}",
    ]
    i = text.index("slots:")
    text[i : i + 2] = slots_yaml
    text = [line.replace("slots: [noon]", "slots: [noon, afternoon]") for line in text]
    e2e.config_path.write_text("\n".join(text) + "\n", encoding="utf-8")
    e2e = type(e2e)(e2e.root, e2e.config_path, e2e.offset, e2e.play_at)
    day0 = dt.datetime.now(tz=TZ).date() + dt.timedelta(days=1)
    start = dt.datetime.combine(day0, dt.time(9, 0), TZ).timestamp()
    end = start + hours * 3600
    due: list[tuple[float, dt.date, str]] = []
    for d in range(3):
        for slot, hhmm in (("noon", dt.time(11, 30)), ("afternoon", dt.time(17, 0))):
            at = dt.datetime.combine(day0 + dt.timedelta(days=d), hhmm, TZ).timestamp()
            if at + POST_S < end:
                due.append((at, day0 + dt.timedelta(days=d), slot))
    clock = WarpClock(start, [at for at, _, _ in due])
    results: list[str] = []
    lateness: list[float] = []
    lossy: FleetArgs = {
        "clock": clock,
        "loss": 0.05,
        "flap": 0.01,
        "seed": 8,
        "heartbeat_s": 2.0,
        "refetch_after": REFETCH_S,
    }
    async with e2e.running(fleet=lossy, clock=clock, scheduling=False) as run:
        daemon, fleet = run.daemon, run.fleet
        for play_at, day, slot in due:
            await clock.until(play_at - LEAD_S + 1)
            daemon.queue.put_nowait(SlotDue(day, slot, reason="soak"))
            await clock.until(play_at - PRE_S)
            restarts = {n: s.restarts for n, s in fleet.agents.items()}
            await clock.until(play_at)
            up = {
                n
                for n, s in fleet.agents.items()
                if s.agent is not None and s.agent.link.connected.is_set()
            }
            await clock.until(play_at + POST_S)
            online = {n for n in up if fleet.agents[n].restarts == restarts[n]}
            ids = {r.hamlet: r.id for r in daemon.journal.dispatches_for(day, slot)}
            missed: list[str] = []
            lost_playlist: list[str] = []
            for node in sorted(online):
                sim = fleet.agents[node]
                pid = ids[sim.spec.hamlet]
                starts = [p for p in sim.player.plays if p[0] == pid]
                if not starts:
                    got = sim.agent is not None and (
                        pid in sim.agent.playlists.pending or sim.agent.playlists.known(pid)
                    )
                    (missed if got else lost_playlist).append(node)
                    continue
                assert fleet.plays_of(pid)[node] == 1, (node, pid)
                lateness.append(starts[0][2] - play_at)
            results.append(
                f"{day} {slot}: {len(online)} online through the slot, {len(missed)} accepted"
                f" but did not play {missed}, {len(lost_playlist)} never got the playlist"
                f" {lost_playlist}"
            )
            assert missed == [], results[-1]
    assert lateness, results
    p95 = statistics.quantiles(lateness, n=20)[-1] if len(lateness) > 1 else lateness[0]
    print("\n".join(results))
    print(f"soak: {hours} simulated hours, {len(lateness)} plays, p95 late {p95:.2f}s")
    assert p95 < 2.0, (p95, results)
    # Inbound loss may drop the retained playlist itself; the agent recovers it only on its
    # next reconnect (see the report), so such nodes are counted apart, bounded by the loss.
    lost = sum(int(r.split(", ")[2].split()[0]) for r in results)
    assert lost <= max(1, 0.15 * len(lateness)), results
