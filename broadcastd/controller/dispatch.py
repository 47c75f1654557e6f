"""Dispatch: a slot's plan becomes retained audio chunks and one signed playlist per hamlet.

The journal, not the broker, is the source of truth: a playlist is journaled (the outbox) before
it is published and marked published after the broker acknowledged it; after every reconnect
the current playlist of every hamlet and its audio are published again, byte for byte.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.controller.playlists import PlaylistMaker, SeqCounter, SignedPlaylist
from broadcastd.controller.slotdecision import decide, latest_dispatch, note_sent, note_skip
from broadcastd.errors import BroadcastdError, LinkError, ProtocolError, handled_error
from broadcastd.localtime import local_time
from broadcastd.models import Clip, SlotPlan, metric_slot
from broadcastd.plan.exercise import EXERCISE_SLOT, exercise_plans
from broadcastd.plan.slotplan import build_plan
from broadcastd.protocol.titles import playlist_title
from broadcastd.transport.audioout import AudioOut, Publisher

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from broadcastd.config import LoadedConfig
    from broadcastd.journal.store import Journal
    from broadcastd.metrics import Metrics
    from broadcastd.plan.volume import Schedule
    from broadcastd.render.renderer import Renderer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SlotDue:
    """A scheduler job's only output: this slot of this date is due for dispatch."""

    date: dt.date
    slot: str
    reason: str = "scheduled"


@dataclass(frozen=True, slots=True)
class Published:
    playlist: str
    hamlet: str
    slot: str
    play_at: int
    expires_at: int


class Dispatcher:
    """Owns publishing; one instance per daemon, driven by `SlotDue`s and control requests."""

    def __init__(  # noqa: PLR0913 - the composition root hands over each collaborator
        self,
        loaded: LoadedConfig,
        *,
        link: Publisher,
        journal: Journal,
        renderer: Renderer,
        key: Ed25519PrivateKey,
        metrics: Metrics,
        clock: Callable[[], float],
        audio: Publisher | None = None,
        persist: Callable[[], None] | None = None,
        schedules: Callable[[str], Schedule | None] | None = None,
    ) -> None:
        self._loaded = loaded  # the plan needs the measured clip lengths beside the config
        self.config = loaded.config
        self._link = link
        self._topics = protocol.Topics(self.config.commune.id)
        self._audio = AudioOut(audio if audio is not None else link, self._topics, clock)
        self._journal = journal
        self._renderer = renderer
        self._key = key
        self._metrics = metrics
        self._clock = clock
        self._seq = SeqCounter(clock, journal.max_seq())
        self._maker = PlaylistMaker(
            self.config,
            renderer=renderer,
            journal=journal,
            key=key,
            seq=self._seq,
            clock=clock,
            schedules=schedules,
        )
        self._reconnected = asyncio.Event()
        # Asks the broker to save what was just published (its own saves are time-based).
        self._persist = persist or (lambda: None)
        self.idle = asyncio.Event()
        self.idle.set()

    def replace_config(self, loaded: LoadedConfig) -> None:
        self._loaded = loaded
        self.config = self._maker.config = loaded.config

    def next_adhoc_number(self) -> int:
        """A fresh number for an ad-hoc announcement's id (unique per controller)."""
        return self._seq.next()

    @property
    def seq(self) -> SeqCounter:
        """The controller's one sequence, shared with the controls (a node compares a stop's
        `seq` with its playlists')."""
        return self._seq

    # -- the dispatch task -------------------------------------------------------------------------

    async def run(self, queue: asyncio.Queue[SlotDue]) -> None:
        while True:
            due = await queue.get()
            self.idle.clear()
            try:
                await self.dispatch_slot(due.date, due.slot, reason=due.reason)
            except BroadcastdError as exc:
                log.error("slot %s %s not dispatched: %s", due.date, due.slot, exc)
            finally:
                if queue.empty():
                    self.idle.set()

    async def run_republisher(self) -> None:
        """After every (re)connect: publish the outbox and each hamlet's current playlist again."""
        while True:
            await self._reconnected.wait()
            self._reconnected.clear()
            self._audio.forget()  # the broker may have lost retained audio: publish it again
            try:
                await self.republish()
            except LinkError as exc:
                log.warning("re-publish after reconnect interrupted: %s", exc)

    async def on_connect(self) -> None:
        """MqttLink hook: must return quickly, the work happens in `run_republisher`."""
        self._reconnected.set()

    async def dispatch_slot(
        self,
        day: dt.date,
        slot: str,
        *,
        reason: str = "scheduled",
        play_at: dt.datetime | None = None,
    ) -> list[Published]:
        """Dispatch one slot of one date to every hamlet that has something to play."""
        if slot == EXERCISE_SLOT:  # the monthly exercise: its own plan, always status exercise
            log.info("dispatching the %s exercise (%s)", day, reason)
            return await self.dispatch_plans(exercise_plans(self.config, day), status="exercise")
        plans = [p for p in build_plan(self._loaded, day) if p.slot == slot]
        if play_at is not None:
            shift = play_at - plans[0].play_at if plans else dt.timedelta(0)
            plans = [_shifted(p, shift) for p in plans]
        log.info("dispatching %s %s to %d hamlets (%s)", day, slot, len(plans), reason)
        return await self.dispatch_plans(plans, why=reason)

    async def dispatch_plans(
        self,
        plans: Iterable[SlotPlan],
        *,
        priority: str | None = None,
        status: str = "live",
        urgent: bool = False,
        why: str | None = None,
    ) -> list[Published]:
        """Render, sign, journal, publish. With `why` (a scheduled slot's reason) each hamlet is
        decided against what the journal holds for its slot (slotdecision.py); ad-hoc plans are
        always new playlists."""
        now = self._clock()
        clips: list[Clip] = []
        playlists: list[SignedPlaylist] = []
        for plan in plans:
            signed, used = await self._prepare(plan, now, priority, status, why)
            if signed is not None and not self._oversize(plan, signed, why or status):
                clips += used
                playlists.append(signed)
        for signed in playlists:
            await self._journal.record_dispatch(signed)
        return await self.publish(clips, playlists, urgent=urgent)

    async def _prepare(
        self, plan: SlotPlan, now: float, priority: str | None, status: str, why: str | None
    ) -> tuple[SignedPlaylist | None, list[Clip]]:
        """One hamlet's playlist and the clips it names; None when skipped (logged, journaled)."""
        if plan.expires_at.timestamp() <= now:
            note_skip(self._journal, plan, why or status, "expired before dispatch")
            return None, []
        clips, items = await self._maker.clips(plan)
        if not items:
            note_skip(self._journal, plan, why or status, "nothing to play")
            return None, []
        entries = self._maker.entries(clips, items)
        if why is None:
            return self._maker.seal(plan, entries, items, priority, status), clips
        latest = latest_dispatch(self._journal, plan)
        play_at, tz = int(plan.play_at.timestamp()), self.config.commune.tz
        verdict = decide(latest, entries, clips, play_at, now=now, tz=tz)
        if verdict.action == "skip":
            note_skip(self._journal, plan, why, verdict.reason)
            return None, []
        if verdict.action == "keep" and latest is not None:
            signed = latest.signed()  # as journaled, whatever id scheme made it
        else:
            signed = self._maker.seal(plan, entries, items, priority, status)
        note_sent(self._journal, plan, signed, why, verdict.reason)
        return signed, clips

    def _oversize(self, plan: SlotPlan, signed: SignedPlaylist, why: str) -> bool:
        """A playlist nodes would refuse and the broker would close our connection for."""
        size = len(signed.wire)
        if size <= protocol.MAX_ENVELOPE_BYTES:
            return False
        reason = (
            f"playlist of {size} bytes is over the {protocol.MAX_ENVELOPE_BYTES}-byte limit "
            f"({len(signed.envelope.items)} items: fewer or shorter titles)"
        )
        log.error("hamlet %s: %s %s not dispatched: %s", plan.hamlet, plan.date, plan.slot, reason)
        note_skip(self._journal, plan, why, reason)
        return True

    async def publish(
        self, clips: Sequence[Clip], playlists: Sequence[SignedPlaylist], *, urgent: bool
    ) -> list[Published]:
        """Each clip once, in the order the playlists name them; each playlist as soon as every
        clip it names is retained. The first hamlets' speakers fetch while the rest is still
        being published, and no hamlet waits for another's broker round trip or journal commit."""
        if urgent:
            self._audio.urgent_clear.clear()
        retained = {c.sha256: asyncio.Event() for c in clips}

        async def playlist(signed: SignedPlaylist) -> Published:
            for item in signed.envelope.items:
                if (event := retained.get(item.sha256)) is not None:
                    await event.wait()
            return await self._publish_playlist(signed)

        try:
            async with asyncio.TaskGroup() as tg:
                expires = _expires(playlists)
                audio = self._audio.publish(clips, expires, urgent=urgent, retained=retained)
                tg.create_task(audio, name="audio")
                sent = [tg.create_task(playlist(signed)) for signed in playlists]
        except ExceptionGroup as group:
            raise handled_error(group) from None
        finally:
            if urgent:
                self._audio.urgent_clear.set()
        if playlists:
            self._persist()
        return [task.result() for task in sent]

    async def republish(self) -> None:
        """Outbox first (never published), then the current retained playlist of every hamlet."""
        now = self._clock()
        rows = [*self._journal.unpublished(now), *self._journal.latest_per_hamlet(now)]
        seen: set[str] = set()
        for row in rows:
            if row.id in seen:
                continue
            seen.add(row.id)
            try:
                signed = row.signed()
            except ProtocolError as exc:
                log.error("playlist %s not re-published: journaled envelope: %s", row.id, exc)
                continue
            clips = self._stored_clips(signed.envelope)
            await self._audio.publish(clips, _expires([signed]), urgent=False)
            await self._publish_playlist(signed)
        if seen:
            self._persist()
            log.info("re-published %d playlists", len(seen))

    def _stored_clips(self, pl: protocol.Playlist) -> list[Clip]:
        clips: list[Clip] = []
        for item in pl.items:
            path = self._renderer.store.path_for(item.sha256)
            if path is None:
                log.error(
                    "playlist %s: clip %s is no longer in the audio store", pl.id, item.sha256
                )
                continue
            clips.append(Clip(item.sha256, path, item.bytes, item.duration_ms))
        return clips

    # -- publishing --------------------------------------------------------------------------------

    async def _publish_playlist(self, signed: SignedPlaylist) -> Published:
        now = self._clock()
        pl = signed.envelope
        ttl = max(1, pl.expires_at - int(now))
        await self._link.publish(
            self._topics.playlist(pl.hamlet), signed.wire, retain=True, expiry=ttl
        )
        first = await self._journal.mark_published(pl.id, now)
        tz = self.config.commune.tz
        log.info(
            '%s playlist %s "%s" to hamlet %s (%s, %s): plays at %s, expires %s',
            "published" if first else "re-published", pl.id, playlist_title(pl.items), pl.hamlet,
            pl.slot, pl.priority, local_time(pl.play_at, tz), local_time(pl.expires_at, tz),
        )  # fmt: skip
        if first:
            self._metrics.playlists_published_total.labels(
                slot=metric_slot(pl.slot), priority=pl.priority
            ).inc()
            self._metrics.dispatch_lag_seconds.observe(max(0.0, now - pl.issued_at))
        return Published(pl.id, pl.hamlet, pl.slot, pl.play_at, pl.expires_at)


def _expires(playlists: Sequence[SignedPlaylist]) -> int:
    """When the last of these playlists expires: their audio must outlive it."""
    return max((s.envelope.expires_at for s in playlists), default=0)


def _shifted(plan: SlotPlan, shift: dt.timedelta) -> SlotPlan:
    return SlotPlan(
        date=plan.date,
        slot=plan.slot,
        hamlet=plan.hamlet,
        play_at=plan.play_at + shift,
        expires_at=plan.expires_at + shift,
        publish_at=plan.publish_at + shift,
        items=plan.items,
        dropped=plan.dropped,
    )
