"""At what level a playlist plays: the hamlet's volume schedule at its play_at, or
`emergency.volume` for a live emergency (DESIGN.md §4, §5). The schedule is the config's
`volume:`, unless an operator set another one for the hamlet (`volume-schedule`, journaled)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from broadcastd.config import Config

# time of day -> the level from then until the next entry (the last one runs past midnight)
Schedule = dict[dt.time, int]
# The journal's event for an operator's schedule: {"hamlets": [...], "schedule": {"HH:MM": N}}
# or "schedule": null, the hamlets back on the config's `volume:`.
SCHEDULE_EVENT: Final = "volume_schedule"


@dataclass(frozen=True, slots=True)
class PlaylistVolume:
    """The envelope's `volume` and `volume_since` (None: the field stays out)."""

    level: int | None = None
    since: int | None = None  # when the scheduled level began; None for an emergency


def playlist_volume(  # noqa: PLR0913 - what decides a playlist's level, named
    config: Config,
    hamlet: str,
    play_at: dt.datetime,
    *,
    priority: str,
    status: str,
    schedule: Mapping[dt.time, int] | None = None,
) -> PlaylistVolume:
    """A live emergency plays at `emergency.volume`, always; anything else at the level the
    hamlet's schedule sets at `play_at` (a node's own level if it has no schedule). `schedule`:
    the one an operator set for the hamlet, in force instead of the config's."""
    if priority == "emergency" and status == "live":
        return PlaylistVolume(config.emergency.volume)
    if schedule is None:
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


def schedule_wire(schedule: Mapping[dt.time, int]) -> dict[str, int]:
    """A schedule as the control socket and the journal carry it: {"HH:MM": level}, in order."""
    return {f"{at:%H:%M}": level for at, level in sorted(schedule.items())}


def schedules_in_force(events: Iterable[Mapping[str, Any]]) -> dict[str, Schedule]:
    """hamlet -> the schedule operators set last, from the journal's SCHEDULE_EVENT details in
    order; a hamlet whose last one is null is back on the config's (it is left out)."""
    found: dict[str, Schedule] = {}
    for event in events:
        schedule = event.get("schedule")
        for hamlet in event.get("hamlets") or ():
            if schedule is None:
                found.pop(hamlet, None)
            else:
                found[hamlet] = {dt.time.fromisoformat(t): int(n) for t, n in schedule.items()}
    return found
