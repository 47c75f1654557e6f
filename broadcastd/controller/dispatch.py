"""Dispatch: a slot's plan becomes retained audio chunks and one signed playlist per hamlet.

The journal, not the broker, is the source of truth: a playlist is journaled (the outbox) before
it is published and marked published after the broker acknowledged it; after every reconnect
the current playlist of every hamlet and its audio are published again, byte for byte.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import (
    BroadcastdError,
    LinkError,
    ProtocolError,
    RenderError,
    handled_error,
)
from broadcastd.models import Clip, PlanItem, SlotPlan, metric_slot
from broadcastd.plan.exercise import EXERCISE_SLOT, exercise_plans
from broadcastd.plan.slotplan import build_plan
from broadcastd.plan.volume import playlist_volume
from broadcastd.transport.audioout import AudioOut, Publisher

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from broadcastd.config import LoadedConfig
    from broadcastd.journal.store import Journal
    from broadcastd.metrics import Metrics
    from broadcastd.render.renderer import Renderer

log = logging.getLogger(__name__)

SignedPlaylist = protocol.Signed[protocol.Playlist]

CHIME_LANG = "zxx"  # ISO 639-2 "no linguistic content"


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


class SeqCounter:
    """Per-controller monotonic sequence: clock milliseconds, never repeating or going back."""

    def __init__(self, clock: Callable[[], float], floor: int = 0) -> None:
        self._clock = clock
        self._last = floor

    def next(self) -> int:
        self._last = max(self._last + 1, int(self._clock() * 1000))
        return self._last


def playlist_id(
    plan_date: dt.date, slot: str, hamlet: str, entries: Sequence[tuple[str, str]], status: str
) -> str:
    """Stable for the same (announcement, clip) entries, so a restart re-publishes the same id and
    nodes deduplicate; an ad-hoc announcement repeated word for word is a new announcement id,
    hence a new playlist that plays again."""
    parts = [status, *(f"{ann}:{sha}" for ann, sha in entries)]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:10]
    return f"{plan_date:%Y%m%d}-{slot}-{hamlet}-{digest}"


class Dispatcher:
    """Owns publishing playlists; one instance per daemon, driven by `SlotDue`s and requests."""

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
        self._reconnected = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def replace_config(self, loaded: LoadedConfig) -> None:
        self._loaded = loaded
        self.config = loaded.config

    @property
    def seq(self) -> SeqCounter:
        """The controller's sequence, shared with the controls (see controls.py)."""
        return self._seq

    def next_adhoc_number(self) -> int:
        """A fresh number for an ad-hoc announcement's id (unique per controller)."""
        return self._seq.next()

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
        return await self.dispatch_plans(plans)

    async def dispatch_plans(
        self,
        plans: Iterable[SlotPlan],
        *,
        priority: str | None = None,
        status: str = "live",
        urgent: bool = False,
    ) -> list[Published]:
        now = self._clock()
        ready: list[tuple[SlotPlan, list[Clip], list[PlanItem]]] = []
        for plan in plans:
            if plan.expires_at.timestamp() <= now:
                self._journal.record_skip(
                    plan.date, plan.slot, plan.hamlet, "expired before dispatch"
                )
                continue
            plan_clips, items = await self._clips(plan)
            if not items:
                self._journal.record_skip(plan.date, plan.slot, plan.hamlet, "nothing to play")
                continue
            ready.append((plan, plan_clips, items))
        playlists: list[SignedPlaylist] = []
        clips: list[Clip] = []
        for plan, plan_clips, items in ready:
            signed = self._playlist(plan, plan_clips, items, priority, status)
            if self._withdrawn(signed.envelope.id):  # the same playlist, stopped or cancelled
                reason = "withdrawn by a stop or cancel"
                self._journal.record_skip(plan.date, plan.slot, plan.hamlet, reason)
                continue
            playlists.append(signed)
            clips += plan_clips
        for signed in playlists:
            await self._journal.record_dispatch(signed)
        return await self.publish(clips, playlists, urgent=urgent)

    def _withdrawn(self, playlist_id: str) -> bool:
        row = self._journal.dispatch(playlist_id)
        return row is not None and row.cancelled_at is not None

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

    # -- building ----------------------------------------------------------------------------------

    async def _clips(self, plan: SlotPlan) -> tuple[list[Clip], list[PlanItem]]:
        """The playlist's clips in play order (intro, items, outro) and the items that rendered."""
        clips: list[Clip] = []
        items: list[PlanItem] = []
        for item in plan.items:
            try:
                clips.append(await self._renderer.clip_for(item))
                items.append(item)
            except RenderError as exc:
                log.error(
                    "hamlet %s: %s/%s left out: %s", plan.hamlet, item.announcement, item.lang, exc
                )
        if not items:
            return [], []
        audio = self.config.audio
        head = [await self._renderer.chime(audio.intro)] if audio.intro else []
        tail = [await self._renderer.chime(audio.outro)] if audio.outro else []
        return head + clips + tail, items

    def _playlist(
        self,
        plan: SlotPlan,
        clips: list[Clip],
        items: list[PlanItem],
        priority: str | None,
        status: str,
    ) -> SignedPlaylist:
        audio = self.config.audio
        labels: list[tuple[str, str, str]] = []
        if audio.intro:
            labels.append(("intro", CHIME_LANG, "intro"))
        labels += [(i.title, i.lang, i.announcement) for i in items]
        if audio.outro:
            labels.append(("outro", CHIME_LANG, "outro"))
        entries = [
            protocol.PlaylistItem(
                sha256=c.sha256,
                bytes=c.size,
                chunks=protocol.chunk_count(c.size),
                duration_ms=c.duration_ms,
                title=title,
                lang=lang,
                announcement=ann,
            )
            for c, (title, lang, ann) in zip(clips, labels, strict=True)
        ]
        top = priority or min((i.priority for i in items), key=_rank)
        keyed = [(ann, c.sha256) for c, (_, _, ann) in zip(clips, labels, strict=True)]
        pid = playlist_id(plan.date, plan.slot, plan.hamlet, keyed, status)
        existing = self._journal.dispatch(pid)
        if existing is not None:
            return existing.signed()
        volume = playlist_volume(
            self.config, plan.hamlet, plan.play_at, priority=top, status=status
        )
        return protocol.seal(
            protocol.Playlist(
                commune=self.config.commune.id,
                hamlet=plan.hamlet,
                id=pid,
                slot=plan.slot,
                play_at=int(plan.play_at.timestamp()),
                expires_at=int(plan.expires_at.timestamp()),
                priority=top,
                issued_at=int(self._clock()),
                items=tuple(entries),
                status=status,
                seq=self._seq.next(),
                volume=volume.level,
                volume_since=volume.since,
            ),
            self._key,
        )

    # -- publishing --------------------------------------------------------------------------------

    async def _publish_playlist(self, signed: SignedPlaylist) -> Published:
        now = self._clock()
        pl = signed.envelope
        ttl = max(1, pl.expires_at - int(now))
        await self._link.publish(
            self._topics.playlist(pl.hamlet), signed.wire, retain=True, expiry=ttl
        )
        first = await self._journal.mark_published(pl.id, now)
        if first:
            self._metrics.playlists_published_total.labels(
                slot=metric_slot(pl.slot), priority=pl.priority
            ).inc()
            self._metrics.dispatch_lag_seconds.observe(max(0.0, now - pl.issued_at))
        return Published(pl.id, pl.hamlet, pl.slot, pl.play_at, pl.expires_at)


def _expires(playlists: Sequence[SignedPlaylist]) -> int:
    """When the last of these playlists expires: their audio must outlive it."""
    return max((s.envelope.expires_at for s in playlists), default=0)


def _rank(priority: str) -> int:
    return {"emergency": 0, "priority": 1}.get(priority, 2)


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
