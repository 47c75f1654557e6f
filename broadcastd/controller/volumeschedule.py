"""`volume-schedule`: the levels by time of day an operator set for hamlets, in force instead of
their config's `volume:` for every playlist made from then on, until one is set again or the
hamlet is put back on the config's.

The journal is where they live: each change is a `volume_schedule` event with who asked, and a
start folds those events into what is in force (plan/volume.py). A playlist already signed keeps
the level it carries (its id does not change); `volume LEVEL` is for now.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from broadcastd.plan.volume import schedule_wire, schedules_in_force

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Mapping, Sequence

    from broadcastd.config import Config
    from broadcastd.plan.volume import Schedule


class VolumeSchedules:
    """The operators' schedules in force, per hamlet; `for_hamlet` is what a playlist plays by."""

    def __init__(self, journaled: Iterable[str] = ()) -> None:
        """`journaled`: the journal's `volume_schedule` event details, oldest first."""
        self._in_force = schedules_in_force(json.loads(detail) for detail in journaled)

    def for_hamlet(self, hamlet: str) -> Schedule | None:
        """The schedule an operator set for `hamlet`; None: the config's is in force."""
        return self._in_force.get(hamlet)

    def set(
        self, config: Config, hamlets: Sequence[str], schedule: Mapping[dt.time, int] | None
    ) -> dict[str, Any]:
        """Put `schedule` in force for `hamlets` (None: their config's again); the answer says
        what each of them plays by now."""
        for hamlet in hamlets:
            if schedule is None:
                self._in_force.pop(hamlet, None)
            else:
                self._in_force[hamlet] = dict(schedule)
        in_force: dict[str, dict[str, int] | None] = {}
        for hamlet in hamlets:
            mine = self.for_hamlet(hamlet)
            configured = config.hamlet(hamlet).volume
            chosen = mine if mine is not None else configured
            in_force[hamlet] = schedule_wire(chosen) if chosen else None
        return {
            "hamlets": list(hamlets),
            "schedule": None if schedule is None else schedule_wire(schedule),
            "in_force": in_force,  # null: no schedule, each speaker plays at its own level
        }
