"""At what level a playlist plays: the hamlet's `volume:` schedule at its play_at, or
`emergency.volume` for a live emergency (DESIGN.md §4, §5)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broadcastd.config import Config


@dataclass(frozen=True, slots=True)
class PlaylistVolume:
    """The envelope's `volume` and `volume_since` (None: the field stays out)."""

    level: int | None = None
    since: int | None = None  # when the scheduled level began; None for an emergency


def playlist_volume(
    config: Config, hamlet: str, play_at: dt.datetime, *, priority: str, status: str
) -> PlaylistVolume:
    """A live emergency plays at `emergency.volume`, always; anything else at the level the
    hamlet's schedule sets at `play_at` (a node's own level if it has no schedule)."""
    if priority == "emergency" and status == "live":
        return PlaylistVolume(config.emergency.volume)
    schedule = config.hamlet(hamlet).volume
    if not schedule:
        return PlaylistVolume()
    local = play_at.astimezone(config.commune.tz)
    times = sorted(schedule)
    earlier = [t for t in times if t <= local.time()]
    # Before the day's first entry, the previous evening's last level is still in force.
    at, day = (earlier[-1], local.date()) if earlier else (times[-1], local.date() - _DAY)
    since = dt.datetime.combine(day, at, tzinfo=config.commune.tz)
    return PlaylistVolume(schedule[at], int(since.timestamp()))


_DAY = dt.timedelta(days=1)
