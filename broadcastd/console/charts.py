"""Numbers for the pages' charts, drawn as inline SVG by the templates (no chart library, no
script: a phone on a weak link gets them with the page).

- availability: per day, the fraction of the day a speaker was `online`, from its transitions;
- bars: values scaled to a fixed drawing height, with the 80% target line where it applies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from zoneinfo import ZoneInfo

    from broadcastd.journal.reports import Report
    from broadcastd.models import Transition

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float  # what the bar stands for (a fraction, a count, minutes)
    height: float  # 0..100, for the SVG
    ok: bool  # drawn in the "good" colour


def availability(
    before: Transition | None,
    transitions: Sequence[Transition],
    *,
    days: int,
    now: float,
    tz: ZoneInfo,
) -> list[tuple[dt.date, float | None]]:
    """For each of the last `days` local days (oldest first), the fraction spent online.

    A day before anything was journaled about the speaker is None (unknown), not 0.
    """
    today = dt.datetime.fromtimestamp(now, tz=tz).date()
    first = today - dt.timedelta(days=days - 1)
    starts = [
        dt.datetime.combine(first + dt.timedelta(days=k), dt.time(), tzinfo=tz).timestamp()
        for k in range(days + 1)
    ]
    # (from, state) runs; before the first known transition the state is unknown
    runs: list[tuple[float, str | None]] = [(starts[0], before.to if before else None)]
    runs += [(t.ts, t.to) for t in transitions if t.ts >= starts[0]]
    online = [0.0] * days
    known = [0.0] * days
    for k, (begin, state) in enumerate(runs):
        end = runs[k + 1][0] if k + 1 < len(runs) else now
        if state is None or end <= begin:
            continue
        for d in range(days):
            lo, hi = max(begin, starts[d]), min(end, starts[d + 1], now)
            if hi > lo:
                known[d] += hi - lo
                if state == "online":
                    online[d] += hi - lo
    return [
        (first + dt.timedelta(days=d), (online[d] / known[d]) if known[d] > 0 else None)
        for d in range(days)
    ]


def availability_bars(series: list[tuple[dt.date, float | None]]) -> list[Bar]:
    return [
        Bar(
            day.strftime("%d/%m"),
            -1.0 if share is None else share,
            0.0 if share is None else round(100 * share, 1),
            share is not None and share >= 0.8,
        )
        for day, share in series
    ]


def coverage_bars(report: Report, target: float) -> list[Bar]:
    """Per day, households reached by live scheduled slots over households they were for."""
    reached: dict[str, int] = {}
    wanted: dict[str, int] = {}
    for row in report.rows:
        if row.status != "live":
            continue
        reached[row.date] = reached.get(row.date, 0) + row.households_reached
        wanted[row.date] = wanted.get(row.date, 0) + row.households
    bars: list[Bar] = []
    for date in sorted(wanted):
        share = reached[date] / wanted[date] if wanted[date] else 0.0
        label = dt.date.fromisoformat(date).strftime("%d/%m")
        bars.append(Bar(label, share, round(100 * min(share, 1.0), 1), share >= target))
    return bars


def minutes_bars(minutes: dict[str, float]) -> list[Bar]:
    top = max(minutes.values(), default=0.0)
    return [
        Bar(category, round(value, 1), round(100 * value / top, 1) if top else 0.0, ok=True)
        for category, value in sorted(minutes.items(), key=lambda kv: -kv[1])
    ]
