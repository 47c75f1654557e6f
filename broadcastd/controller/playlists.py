"""Signed playlist envelopes from slot plans: stable ids, the controller's sequence, helpers the
dispatcher uses on envelopes it built or re-reads from the journal."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.models import SlotPlan

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from broadcastd.config import Config
    from broadcastd.models import Clip, PlanItem

CHIME_LANG = "zxx"  # ISO 639-2 "no linguistic content"


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


def _labels(config: Config, items: Sequence[PlanItem]) -> list[tuple[str, str, str]]:
    """(title, lang, announcement) of each clip in play order: intro, items, outro."""
    audio = config.audio
    labels: list[tuple[str, str, str]] = []
    if audio.intro:
        labels.append(("intro", CHIME_LANG, "intro"))
    labels += [(i.title, i.lang, i.announcement) for i in items]
    if audio.outro:
        labels.append(("outro", CHIME_LANG, "outro"))
    return labels


def playlist_id_for(
    config: Config, plan: SlotPlan, clips: Sequence[Clip], items: Sequence[PlanItem], status: str
) -> str:
    labels = _labels(config, items)
    keyed = [(ann, c.sha256) for c, (_, _, ann) in zip(clips, labels, strict=True)]
    return playlist_id(plan.date, plan.slot, plan.hamlet, keyed, status)


def sign_playlist(  # noqa: PLR0913 - every field of the envelope has one source
    config: Config,
    plan: SlotPlan,
    clips: Sequence[Clip],
    items: Sequence[PlanItem],
    *,
    priority: str | None,
    status: str,
    issued_at: int,
    seq: int,
    key: Ed25519PrivateKey,
) -> dict[str, object]:
    labels = _labels(config, items)
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
    return protocol.sign(
        protocol.playlist_envelope(
            commune=config.commune.id,
            hamlet=plan.hamlet,
            playlist_id=playlist_id_for(config, plan, clips, items, status),
            slot=plan.slot,
            play_at=int(plan.play_at.timestamp()),
            expires_at=int(plan.expires_at.timestamp()),
            priority=priority or min((i.priority for i in items), key=rank),
            issued_at=issued_at,
            items=entries,
            status=status,
            seq=seq,
        ),
        key,
    )


def expires(envelopes: Sequence[dict[str, object]]) -> int:
    """When the last of these playlists expires: their audio must outlive it."""
    return max((int(str(e["expires_at"])) for e in envelopes), default=0)


def items_of(env: dict[str, object]) -> list[dict[str, object]]:
    items = env.get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def rank(priority: str) -> int:
    return {"emergency": 0, "priority": 1}.get(priority, 2)


def shifted(plan: SlotPlan, shift: dt.timedelta) -> SlotPlan:
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
