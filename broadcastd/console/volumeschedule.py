"""The volume schedule from the console: levels by time of day for hamlets, in force instead of
their config's `volume:` for every bulletin made from then on, or the config's put back; what the
form says, and what is in force now. The volume page offers it beside "volume now"; its routes
(controls.py) confirm it and send it to the daemon as the logged-in operator (`volume-schedule`,
see controller/volumeschedule.py): the daemon signs the playlists that carry the levels and
journals the change; the console only asks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from broadcastd.console.drafts import FormError, one, parse_volume
from broadcastd.console.i18n import N_
from broadcastd.console.web import console
from broadcastd.plan.volume import SCHEDULE_EVENT, schedule_wire, schedules_in_force

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import Request

    from broadcastd.config import Config
    from broadcastd.journal.store import Journal

MAX_ENTRIES: Final = 24  # as the daemon takes (controller/requests.py)
FORM_ROWS: Final = 4  # empty rows the form offers besides the schedule in force
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


@dataclass(frozen=True, slots=True)
class ScheduleDraft:
    hamlets: tuple[str, ...]
    levels: tuple[tuple[str, int], ...]  # ("06:00", 80), in time order; (): the config's again

    def fields(self) -> dict[str, str]:
        return {
            "hamlet": ",".join(self.hamlets),
            "schedule": " ".join(f"{at}={level}" for at, level in self.levels),
            "configured": "" if self.levels else "1",
        }

    def payload(self) -> dict[str, Any]:
        return {
            "cmd": "volume-schedule",
            "hamlets": ",".join(self.hamlets),
            "schedule": dict(self.levels) or None,
        }


def _pairs(fields: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    """(time, level) as typed: the confirmation page's one `schedule` field ("06:00=80 ..."), or
    the form's rows of `at` and `at_level` (rows left empty are no entries)."""
    canonical = one(fields, "schedule")
    if canonical:
        return [(at, level) for at, _, level in (e.partition("=") for e in canonical.split())]
    rows = zip(fields.get("at", ()), fields.get("at_level", ()), strict=False)
    return [(at.strip(), level.strip()) for at, level in rows if at.strip() or level.strip()]


def parse_schedule(fields: Mapping[str, list[str]], config: Config) -> ScheduleDraft:
    hamlets = parse_volume(fields, config, need_level=False)
    if hamlets.nodes:
        raise FormError(N_("A volume schedule is for whole hamlets."))
    if one(fields, "configured") not in ("", "0"):
        return ScheduleDraft(hamlets.hamlets, ())
    levels: dict[str, int] = {}
    for at, level in _pairs(fields):
        if not _CLOCK.fullmatch(at):
            raise FormError(N_("A time of day is HH:MM, such as 06:00; got %(value)s."), value=at)
        if not (level.isdigit() and len(level) <= 3 and int(level) <= 100):  # the volume scale
            raise FormError(N_("The volume is a whole number from 0 to 100."))
        if at in levels:
            raise FormError(N_("%(time)s is given twice."), time=at)
        levels[at] = int(level)
    if not levels:
        raise FormError(N_("Give at least one time and its level."))
    if len(levels) > MAX_ENTRIES:
        raise FormError(N_("At most %(limit)s times a day."), limit=MAX_ENTRIES)
    return ScheduleDraft(hamlets.hamlets, tuple(sorted(levels.items())))


@dataclass(frozen=True, slots=True)
class InForce:
    """A hamlet's schedule: the config's, and the one an operator set instead (if any)."""

    id: str
    name: str
    configured: dict[str, int]  # {} : no schedule, each speaker plays at its own level
    operators: dict[str, int] | None

    @property
    def now(self) -> dict[str, int]:
        return self.operators if self.operators is not None else self.configured


def _journaled(journal: Journal) -> dict[str, dict[str, int]]:
    details = (json.loads(d) for d in journal.event_details(SCHEDULE_EVENT))
    return {h: schedule_wire(s) for h, s in schedules_in_force(details).items()}


async def in_force(request: Request, hamlets: tuple[str, ...]) -> list[InForce]:
    """What each of `hamlets` plays by now, as the journal says the daemon has it."""
    c = console(request)
    nothing: dict[str, dict[str, int]] = {}
    set_by_operators = await c.journal.read(lambda journal, _: _journaled(journal), nothing)
    return [
        InForce(h.id, h.name, schedule_wire(h.volume or {}), set_by_operators.get(h.id))
        for h in c.loaded.config.hamlets
        if h.id in hamlets
    ]


async def schedule_context(
    request: Request, hamlets: tuple[str, ...], typed: Mapping[str, list[str]]
) -> dict[str, Any]:
    """What the volume page shows and offers of the schedule: the rows as `typed` (a refused
    form, shown again), else one hamlet's schedule in force."""
    shown = await in_force(request, hamlets)
    rows: list[tuple[str, Any]] = list(_pairs(typed))
    if not rows and len(shown) == 1:
        rows = list(shown[0].now.items())
    return {"schedules": shown, "rows": rows + [("", "")] * FORM_ROWS}
