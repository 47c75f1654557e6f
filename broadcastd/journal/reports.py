"""Coverage reports from the journal (DESIGN.md §7): who played what, how many households heard it.

Per date, slot and hamlet (live and exercise apart), over every playlist dispatched for it:
- ready: nodes that acked `ready`, `playing` or `played` (the audio reached them in time);
- played: nodes that acked `played`; failed: nodes that acked `failed`/`rejected`/`expired` and
  never `played`; offline: nodes that never answered at all;
- households reached: the sum of the households of the nodes that played, against the hamlet's.
Minutes aired count each item's duration once per hamlet playlist that at least one node played.
A row is pending while its playlists can still play (`now < expires_at`) and it has not met the
target yet: a bulletin published `lead` ahead of its slot has not failed, it has not aired.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt

    from broadcastd.config import Config
    from broadcastd.journal.store import DispatchRow, Journal

TARGET = 0.80
READY = frozenset({"ready", "playing", "played"})
FAILED = frozenset({"failed", "rejected", "expired"})
CHIMES = frozenset({"intro", "outro"})


@dataclass(frozen=True, slots=True)
class CoverageRow:
    date: str
    slot: str
    hamlet: str
    status: str  # live | exercise
    playlists: tuple[str, ...]
    nodes: int
    ready: int
    played: int
    failed: int
    offline: int
    households_reached: int
    households: int
    play_at: int = 0  # the earliest play_at of its playlists
    pending: bool = False

    @property
    def percent(self) -> float:
        return 100.0 * self.households_reached / self.households if self.households else 0.0

    @property
    def target_met(self) -> bool:
        return self.households > 0 and self.households_reached >= TARGET * self.households

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["playlists"] = list(self.playlists)
        data["percent"] = round(self.percent, 1)
        data["target_met"] = self.target_met
        return data


@dataclass(slots=True)
class Report:
    first: str
    last: str
    rows: list[CoverageRow] = field(default_factory=list)
    # status (live | exercise) -> category -> minutes aired
    minutes: dict[str, dict[str, float]] = field(default_factory=dict)
    skips: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "from": self.first,
            "to": self.last,
            "target_percent": round(TARGET * 100),
            "rows": [r.as_json() for r in self.rows],
            "minutes": {
                s: {c: round(m, 2) for c, m in cats.items()} for s, cats in self.minutes.items()
            },
            "skips": self.skips,
        }


def build_report(
    config: Config, journal: Journal, first: dt.date, last: dt.date, *, now: float | None = None
) -> Report:
    """Coverage of the dates `first..last`; with `now`, rows that can still play are pending."""
    report = Report(first.isoformat(), last.isoformat())
    categories = {a.id: a.category for a in config.announcements}
    groups: dict[tuple[str, str, str, str], list[DispatchRow]] = {}
    for row in journal.dispatches_between(first, last):
        groups.setdefault((row.date, row.slot, row.hamlet, row.status), []).append(row)
    for (date, slot, hamlet_id, status), rows in sorted(groups.items()):
        coverage = _coverage(config, journal, (date, slot, hamlet_id, status), rows)
        open_until = max(r.expires_at for r in rows)
        if now is not None and now < open_until and not coverage.target_met:
            coverage = replace(coverage, pending=True)
        report.rows.append(coverage)
        for row in rows:
            acks = journal.acks_for(row.id)
            if any(a.status == "played" and a.hamlet == row.hamlet for a in acks):
                _add_minutes(report.minutes.setdefault(status, {}), row, categories)
    report.skips = [
        {"date": s.date, "slot": s.slot, "hamlet": s.hamlet, "reason": s.reason}
        for s in journal.skips_between(first, last)
    ]
    return report


def _coverage(
    config: Config, journal: Journal, key: tuple[str, str, str, str], rows: list[DispatchRow]
) -> CoverageRow:
    date, slot, hamlet_id, status = key
    try:
        hamlet = config.hamlet(hamlet_id)
        node_households = {n.id: n.households for n in hamlet.nodes}
        households = hamlet.households
    except KeyError:  # a hamlet since removed from the config: report what the journal knows
        node_households, households = {}, 0
    seen: dict[str, set[str]] = {}
    for row in rows:
        for ack in journal.acks_for(row.id):
            # Only the hamlet's own nodes count: the daemon refuses an ack for another hamlet's
            # playlist, and a journal written before it did must not report one either.
            if ack.hamlet == row.hamlet:
                seen.setdefault(ack.node, set()).add(ack.status)
    nodes = set(node_households) | set(seen)
    played = {n for n in nodes if "played" in seen.get(n, ())}
    return CoverageRow(
        date=date,
        slot=slot,
        hamlet=hamlet_id,
        status=status,
        playlists=tuple(r.id for r in rows),
        nodes=len(nodes),
        ready=sum(1 for n in nodes if seen.get(n, set()) & READY),
        played=len(played),
        failed=sum(1 for n in nodes - played if seen.get(n, set()) & FAILED),
        offline=sum(1 for n in nodes if n not in seen),
        households_reached=sum(node_households.get(n, 0) for n in played),
        households=households,
        play_at=min(r.play_at for r in rows),
    )


def _add_minutes(minutes: dict[str, float], row: DispatchRow, categories: dict[str, str]) -> None:
    for item in row.item_list():
        announcement = str(item.get("announcement", ""))
        if announcement in CHIMES:
            continue
        category = categories.get(announcement)
        if category is None:  # ad-hoc `broadcastd announce` items are not in the config
            category = "emergency" if row.priority == "emergency" else "announcement"
        minutes[category] = minutes.get(category, 0.0) + int(item.get("duration_ms", 0)) / 60000


CSV_FIELDS = (
    "date",
    "slot",
    "hamlet",
    "status",
    "nodes",
    "ready",
    "played",
    "failed",
    "offline",
    "households_reached",
    "households",
    "percent",
    "target_met",
    "playlists",
    "play_at",
    "pending",
)


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        data = row.as_json()
        data["playlists"] = " ".join(row.playlists)
        writer.writerow(data)
    return out.getvalue()


def to_json(report: Report) -> str:
    return json.dumps(report.as_json(), ensure_ascii=False, indent=2)
