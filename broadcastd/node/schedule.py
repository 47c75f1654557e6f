"""When a speaker's playlists play: the loop that puts the next due one on air.

Time comes from the injected clock; the loop sleeps until the next play_at or expiry and re-reads
the clock at least every `tick` (1 s), so a stepped clock, or a simulator's fast or fake one,
drives playback without real waiting. A playlist id is recorded as played before its first sound,
so it plays at most once, across crashes and restarts.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from broadcastd.node.clock import ControllerClock
    from broadcastd.node.fetch import Fetcher
    from broadcastd.node.onair import OnAir
    from broadcastd.node.playlists import Playlists
    from broadcastd.node.store import NodeStore

MIN_WAIT_S = 0.005  # the loop's shortest sleep: a deadline a hair away is not a busy loop


class Scheduler:
    """`await scheduler.run(tg)`: plays what falls due (in `tg`), tidies the cache after."""

    def __init__(  # noqa: PLR0913 - the speaker's parts playback reads, each injected
        self,
        playlists: Playlists,
        *,
        clock: ControllerClock,
        on_air: OnAir,
        store: NodeStore,
        fetcher: Fetcher,
        wake: asyncio.Event,
        tick: float,
        ask_again: Callable[[], Awaitable[None]] | None = None,
        name: str = "node",
    ) -> None:
        self.playlists = playlists
        self.clock = clock
        self.on_air = on_air
        self.store = store
        self.fetcher = fetcher
        self.wake = wake  # set by whatever may make something due: a message, a clip, an end
        self.tick = tick
        # Simulated loss can drop the retained playlist itself; a real QoS 1 session cannot, so
        # only the simulator asks for it again (every `refetch_after`).
        self.ask_again = ask_again
        self.name = name
        self._tidy_due = False

    def tidy_soon(self) -> None:
        """A playlist is done with: stop its downloads and prune the cache at the next turn."""
        self._tidy_due = True

    async def run(self, tg: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        while True:
            self.wake.clear()
            for deferred in self.clock.settled():  # judged again by the controller's time
                await self.playlists.on_playlist(deferred)
            await self._run_due(tg, self.clock())
            if self._tidy_due:
                await self._tidy()
            await self.fetcher.resubscribe(stalled_only=True)
            if self.ask_again is not None and loop.time() - asked > self.fetcher.refetch_after:
                asked = loop.time()
                await self.ask_again()
            delay = self._next_wake(self.clock(), asked + self.fetcher.refetch_after - loop.time())
            if delay is None:
                await self.wake.wait()  # nothing pending or downloading: nothing can fall due
                continue
            # A timer handle, not wait_for's task per wait: a simulated fleet runs 1000 of these.
            timer = loop.call_later(delay, self.wake.set)
            try:
                await self.wake.wait()
            finally:
                timer.cancel()

    async def _tidy(self) -> None:
        """Once a playlist is done with: stop downloads no playlist needs any more and delete
        clips unused for a week (NodeStore.prune); a speaker runs for years on a small card."""
        self._tidy_due = False
        keep = self.playlists.clips_needed()
        await self.fetcher.abandon(keep)
        removed = self.store.prune(keep | self.fetcher.active.keys())
        self.fetcher.ready.difference_update(removed)

    def _next_wake(self, now: float, ask_in: float) -> float | None:
        """Seconds until something can fall due: a ready playlist's play_at, an expiry, a stalled
        download's check (or the simulator's re-ask, `ask_in`), at most `tick` so a (possibly
        fake or stepped) clock is re-read; None if only an event (a message) can change anything.
        A playlist due but waiting for the current bulletin is woken by that bulletin's end."""
        waits = self.playlists.deadlines_in(now)
        stalled_in = self.fetcher.stall_check_in()
        if stalled_in is not None:
            waits.append(stalled_in)
        if self.ask_again is not None:
            waits.append(ask_in)
        if not waits:
            return None
        return max(MIN_WAIT_S, min(self.tick, *waits))

    async def _run_due(self, tg: asyncio.TaskGroup, now: float) -> None:
        self.playlists.expire(now)
        synced = not self.clock.waiting()  # else only an emergency plays by the board's clock
        due = self.playlists.due(now, synced=synced)
        if not due:
            return
        first = due[0]
        pending = self.playlists.pending
        if self.playlists.stopped(first):  # a stop that came while this one was queued
            del pending[first.id]
            return
        if not self.on_air.may_start(first):
            return  # wait for the current bulletin to end
        await self.on_air.interrupt(f"interrupted by emergency {first.id}")  # if any is on air
        del pending[first.id]
        if first.id in self.store.state.played:
            return  # at most once, ever: whatever queued it again, it has already played
        await asyncio.to_thread(self.store.mark_played, first.id)  # before the first sound
        if first.id in self.store.state.cancelled:
            return  # a cancel arrived while the mark was being written
        self.on_air.start(tg, first, name=f"{self.name}-play-{first.id}")
