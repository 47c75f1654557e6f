"""Dispatch: a slot's plan becomes retained audio chunks and one signed playlist per hamlet.

The journal, not the broker, is the source of truth: a playlist is journaled (the outbox) before
it is published and marked published after the broker acknowledged it; after every reconnect
the current playlist of every hamlet and its audio are published again, byte for byte.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broadcastd import protocol
from broadcastd.controller.playlists import (
    SeqCounter,
    expires,
    items_of,
    playlist_id_for,
    shifted,
    sign_playlist,
)
from broadcastd.errors import BroadcastdError, LinkError, RenderError, handled_error
from broadcastd.models import Clip, PlanItem, SlotPlan, metric_slot
from broadcastd.plan.exercise import EXERCISE_SLOT, exercise_plans
from broadcastd.plan.slotplan import build_plan
from broadcastd.transport.audioout import AudioOut, Publisher

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from broadcastd.config import LoadedConfig
    from broadcastd.journal.store import Journal
    from broadcastd.metrics import Metrics
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
        # Asks the broker to save what was just published (its own saves are time-based).
        self._persist = persist or (lambda: None)
        self._reconnected = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def replace_config(self, loaded: LoadedConfig) -> None:
        self._loaded = loaded
        self.config = loaded.config

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
            plans = [shifted(p, shift) for p in plans]
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
                await self._journal.record_skip(
                    plan.date, plan.slot, plan.hamlet, "expired before dispatch"
                )
                continue
            clips, items = await self._clips(plan)
            if not items:
                await self._journal.record_skip(
                    plan.date, plan.slot, plan.hamlet, "nothing to play"
                )
                continue
            ready.append((plan, clips, items))
        envelopes: list[dict[str, object]] = []
        audio: list[Clip] = []
        for plan, clips, items in ready:
            env = self._envelope(plan, clips, items, priority, status)
            if await self._oversize(plan, env):
                continue
            await self._journal.record_dispatch(env)
            envelopes.append(env)
            audio += clips
        return await self.publish(audio, envelopes, urgent=urgent)

    async def _oversize(self, plan: SlotPlan, env: dict[str, object]) -> bool:
        """A playlist nodes would refuse and the broker would close our connection for."""
        size = len(protocol.encode(env))
        if size <= protocol.MAX_ENVELOPE_BYTES:
            return False
        why = (
            f"playlist of {size} bytes is over the {protocol.MAX_ENVELOPE_BYTES}-byte limit "
            f"({len(items_of(env))} items: fewer or shorter titles)"
        )
        log.error("hamlet %s: %s %s not dispatched: %s", plan.hamlet, plan.date, plan.slot, why)
        await self._journal.record_skip(plan.date, plan.slot, plan.hamlet, why)
        return True

    async def publish(
        self, clips: Sequence[Clip], envelopes: Sequence[dict[str, object]], *, urgent: bool
    ) -> list[Published]:
        """Each clip once, in the order the playlists name them; each playlist as soon as every
        clip it names is retained. The first hamlets' speakers fetch while the rest is still
        being published, and no hamlet waits for another's broker round trip or journal commit."""
        if urgent:
            self._audio.urgent_clear.clear()
        retained = {c.sha256: asyncio.Event() for c in clips}

        async def playlist(env: dict[str, object]) -> Published:
            for item in items_of(env):
                if (event := retained.get(str(item["sha256"]))) is not None:
                    await event.wait()
            return await self._publish_playlist(env)

        try:
            async with asyncio.TaskGroup() as tg:
                until = expires(envelopes)
                audio = self._audio.publish(clips, until, urgent=urgent, retained=retained)
                tg.create_task(audio, name="audio")
                sent = [tg.create_task(playlist(env)) for env in envelopes]
        except ExceptionGroup as group:
            raise handled_error(group) from None
        finally:
            if urgent:
                self._audio.urgent_clear.set()
        if envelopes:
            self._persist()
        return [task.result() for task in sent]

    async def republish(self) -> None:
        """Outbox first (never published), then the current retained playlist of every hamlet."""
        now = self._clock()
        rows = [*self._journal.unpublished(now), *self._journal.latest_per_hamlet(now)]
        seen: set[str] = set()
        for row in rows:
            env = json.loads(row.envelope)
            if env["id"] in seen:
                continue
            seen.add(env["id"])
            await self._audio.publish(self._stored_clips(env), expires([env]), urgent=False)
            await self._publish_playlist(env)
        if seen:
            self._persist()
            log.info("re-published %d playlists", len(seen))

    def _stored_clips(self, env: dict[str, Any]) -> list[Clip]:
        clips: list[Clip] = []
        for item in env["items"]:
            path = self._renderer.store.path_for(item["sha256"])
            if path is None:
                log.error(
                    "playlist %s: clip %s is no longer in the audio store",
                    env["id"],
                    item["sha256"],
                )
                continue
            clips.append(Clip(item["sha256"], path, int(item["bytes"]), int(item["duration_ms"])))
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

    def _envelope(
        self,
        plan: SlotPlan,
        clips: list[Clip],
        items: list[PlanItem],
        priority: str | None,
        status: str,
    ) -> dict[str, object]:
        """The signed playlist; the journaled one if this exact playlist was dispatched before."""
        pid = playlist_id_for(self.config, plan, clips, items, status)
        existing = self._journal.dispatch(pid)
        if existing is not None:
            envelope: dict[str, object] = json.loads(existing.envelope)
            return envelope
        return sign_playlist(
            self.config,
            plan,
            clips,
            items,
            priority=priority,
            status=status,
            issued_at=int(self._clock()),
            seq=self._seq.next(),
            key=self._key,
        )

    # -- publishing --------------------------------------------------------------------------------

    async def _publish_playlist(self, env: dict[str, object]) -> Published:
        now = self._clock()
        pid, hamlet, slot = str(env["id"]), str(env["hamlet"]), str(env["slot"])
        play_at, expires_at = int(str(env["play_at"])), int(str(env["expires_at"]))
        ttl = max(1, expires_at - int(now))
        await self._link.publish(
            self._topics.playlist(hamlet), protocol.encode(env), retain=True, expiry=ttl
        )
        first = await self._journal.mark_published(pid, now)
        if first:
            self._metrics.playlists_published_total.labels(
                slot=metric_slot(slot), priority=str(env["priority"])
            ).inc()
            self._metrics.dispatch_lag_seconds.observe(
                max(0.0, now - float(str(env.get("issued_at", now))))
            )
        return Published(pid, hamlet, slot, play_at, expires_at)

    # -- control ----------------------------------------------------------------------------------

    async def control(
        self,
        hamlets: Iterable[str],
        action: str,
        *,
        target: str | None = None,
        value: int | None = None,
    ) -> str:
        """Sign and send stop / cancel / volume to hamlets; returns the control id."""
        now = int(self._clock())
        seq = self._seq.next()
        cid = f"{action}-{seq}"
        for hamlet in hamlets:
            env = protocol.sign(
                protocol.control_envelope(
                    commune=self.config.commune.id,
                    hamlet=hamlet,
                    control_id=cid,
                    action=action,
                    target=target,
                    value=value,
                    issued_at=now,
                    expires_at=now + 600,
                    seq=seq,
                ),
                self._key,
            )
            await self._link.publish(
                self._topics.control(hamlet), protocol.encode(env), retain=False
            )
            if action == "cancel" and target is not None:
                row = self._journal.dispatch(target)
                if row is not None and row.hamlet == hamlet:
                    await self._link.publish(self._topics.playlist(hamlet), b"", retain=True)
        await self._journal.record_event(
            action, json.dumps({"id": cid, "target": target, "value": value})
        )
        if action == "cancel" and target is not None:
            await self._journal.mark_cancelled(target, now)
        self._persist()  # a control queued for an offline node must survive a broker crash
        return cid
