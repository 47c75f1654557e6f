"""A journal with history: every scheduled slot of `days` days dispatched to every hamlet, each
speaker's acks (most play, some fail, some never answer) and its reachability transitions, all
written through the journal's own writers (so the audit chain is real).

The console's tests use a few days of it; `benchmarks/console.py` a year.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.journal.store import Journal
from broadcastd.models import Ack, AckStatus, Transition

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.config import Config


def _sha(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _playlist(
    config: Config, day: dt.date, slot: str, hamlet: str
) -> protocol.Signed[protocol.Playlist]:
    at = dt.datetime.combine(day, config.slots[slot].at, tzinfo=config.commune.tz)
    items = [
        protocol.PlaylistItem(_sha(a.id, lang), 40_000, 1, 60_000, a.title, lang, a.id)
        for a in config.announcements
        if slot in a.slots and a.active_on(day) and a.targets(hamlet)
        for lang in sorted(a.languages)[:1]
    ] or [protocol.PlaylistItem(_sha("notice"), 20_000, 1, 30_000, "Notice", "vi", "notice")]
    playlist = protocol.Playlist(
        commune=config.commune.id,
        hamlet=hamlet,
        id=f"{day:%Y%m%d}-{slot}-{hamlet}-1",
        slot=slot,
        play_at=int(at.timestamp()),
        expires_at=int(at.timestamp()) + int(config.slots[slot].catch_up.total_seconds()),
        priority="normal",
        issued_at=int(at.timestamp()) - 1800,
        items=tuple(items),
        status="live",
        seq=int(at.timestamp() * 1000),
    )
    return protocol.Signed(playlist, protocol.encode({**playlist.unsigned(), "sig": "x"}))


async def fill(  # noqa: PLR0913 - the shape of the history
    config: Config,
    path: Path,
    *,
    first: dt.date,
    days: int,
    seed: int = 21,
    played: float = 0.9,
) -> Journal:
    """Write the history into the journal at `path`; returns it open (the caller closes it)."""
    rng = random.Random(seed)
    journal = Journal.open(path)
    assert journal._writer is not None
    journal._writer.execute("PRAGMA synchronous=OFF")  # a fixture, not a record to keep
    speakers = [(n.id, h.id) for h in config.hamlets for n in h.nodes]
    start = dt.datetime.combine(first, dt.time(), tzinfo=config.commune.tz).timestamp()
    for node, hamlet_id in speakers:
        journal.record_transition(
            Transition(node, hamlet_id, "unknown", "online", "state online", start)
        )
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        for slot in config.slots:
            for hamlet in config.hamlets:
                signed = _playlist(config, day, slot, hamlet.id)
                await journal.record_dispatch(signed)
                await journal.mark_published(signed.envelope.id, signed.envelope.issued_at)
                for speaker in hamlet.nodes:
                    roll = rng.random()
                    _acks(journal, speaker.id, hamlet.id, signed.envelope, roll, played)
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=config.commune.tz).timestamp()
        for node, hamlet_id in speakers:
            if rng.random() < 0.3:  # a weak link drops for a while
                down = midnight + rng.uniform(0, 80_000)
                journal.record_transition(
                    Transition(node, hamlet_id, "online", "offline", "silent 90s", down)
                )
                back = down + rng.uniform(60, 6_000)
                journal.record_transition(
                    Transition(node, hamlet_id, "offline", "online", "heartbeat", back)
                )
        journal.record_event("reload", f"config reloaded on {day}")
        await journal.flush()
    return journal


def _acks(  # noqa: PLR0913, PLR0917 - one speaker's answer to one playlist
    journal: Journal, node: str, hamlet: str, pl: protocol.Playlist, roll: float, played: float
) -> None:
    if roll > 0.97:
        return  # never answered: counted offline
    steps: list[AckStatus] = ["received", "ready"]
    steps += ["playing", "played"] if roll < played else ["failed"]
    for k, status in enumerate(steps):
        detail = "player error" if status == "failed" else ""
        journal.record_ack(Ack(node, pl.id, status, pl.play_at - 600 + 300 * k, detail), hamlet)
