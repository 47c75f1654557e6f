"""Making one hamlet's playlist: its clips in play order and the signed envelope naming them.

Ids are content-addressed (see `playlist_id`); an id the journal already holds is returned as
journaled, so the same bulletin is never signed twice with different bytes.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import RenderError
from broadcastd.models import CHIME_LANG, PRIORITY_RANK
from broadcastd.plan.volume import playlist_volume

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from broadcastd.config import Config
    from broadcastd.journal.store import Journal
    from broadcastd.models import Clip, PlanItem, SlotPlan
    from broadcastd.plan.volume import Schedule
    from broadcastd.render.renderer import Renderer

log = logging.getLogger(__name__)

SignedPlaylist = protocol.Signed[protocol.Playlist]


class SeqCounter:
    """Per-controller monotonic sequence: clock milliseconds, never repeating or going back."""

    def __init__(self, clock: Callable[[], float], floor: int = 0) -> None:
        self._clock = clock
        self._last = floor

    def next(self) -> int:
        self._last = max(self._last + 1, int(self._clock() * 1000))
        return self._last


def playlist_id(  # noqa: PLR0913 - everything that tells two playlists apart
    plan_date: dt.date,
    slot: str,
    hamlet: str,
    entries: Sequence[tuple[str, str]],
    *,
    status: str,
    play_at: int,
) -> str:
    """Stable for the same (announcement, clip) entries at the same time, so a restart
    re-publishes the same id and nodes deduplicate; the same bulletin moved to another time is a
    new id (nodes would ignore a known id carrying the new time), and an ad-hoc announcement
    repeated word for word is a new announcement id, hence a new playlist that plays again."""
    parts = [status, str(play_at), *(f"{ann}:{sha}" for ann, sha in entries)]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:10]
    return f"{plan_date:%Y%m%d}-{slot}-{hamlet}-{digest}"


class PlaylistMaker:
    """Renders (or finds) a plan's clips and seals the playlist; `config` follows reloads."""

    def __init__(  # noqa: PLR0913 - what signing a playlist needs, handed over by the dispatcher
        self,
        config: Config,
        *,
        renderer: Renderer,
        journal: Journal,
        key: Ed25519PrivateKey,
        seq: SeqCounter,
        clock: Callable[[], float],
        schedules: Callable[[str], Schedule | None] | None = None,
    ) -> None:
        self.config = config
        # hamlet -> the volume schedule an operator set for it (volumeschedule.py), if any
        self._schedules = schedules or (lambda _hamlet: None)
        self._renderer = renderer
        self._journal = journal
        self._key = key
        self._seq = seq
        self._clock = clock

    async def clips(self, plan: SlotPlan) -> tuple[list[Clip], list[PlanItem]]:
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

    def entries(self, clips: list[Clip], items: list[PlanItem]) -> list[protocol.PlaylistItem]:
        audio = self.config.audio
        labels: list[tuple[str, str, str]] = []
        if audio.intro:
            labels.append(("intro", CHIME_LANG, "intro"))
        labels += [(i.title, i.lang, i.announcement) for i in items]
        if audio.outro:
            labels.append(("outro", CHIME_LANG, "outro"))
        return [
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

    def seal(
        self,
        plan: SlotPlan,
        entries: list[protocol.PlaylistItem],
        items: list[PlanItem],
        priority: str | None,
        status: str,
    ) -> SignedPlaylist:
        top = priority or min((i.priority for i in items), key=PRIORITY_RANK.__getitem__)
        keyed = [(e.announcement, e.sha256) for e in entries]
        play_at = int(plan.play_at.timestamp())
        pid = playlist_id(plan.date, plan.slot, plan.hamlet, keyed, status=status, play_at=play_at)
        existing = self._journal.dispatch(pid)
        if existing is not None:
            return existing.signed()
        volume = playlist_volume(
            self.config,
            plan.hamlet,
            plan.play_at,
            priority=top,
            status=status,
            schedule=self._schedules(plan.hamlet),
        )
        return protocol.seal(
            protocol.Playlist(
                commune=self.config.commune.id,
                hamlet=plan.hamlet,
                id=pid,
                slot=plan.slot,
                play_at=play_at,
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
