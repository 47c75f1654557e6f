"""`broadcastd report [--date D | --month M] [--json | --csv]`: coverage per slot and hamlet."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.errors import UsageError
from broadcastd.journal.reports import Report, build_report, to_csv, to_json
from broadcastd.journal.reporttable import render, wide_console
from broadcastd.journal.store import Journal

if TYPE_CHECKING:
    import argparse


def period(date: str | None, month: str | None, today: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last date covered: one day (default today) or one calendar month."""
    if month is not None:
        try:
            first = dt.datetime.strptime(month, "%Y-%m").date()  # noqa: DTZ007 - a calendar month
        except ValueError:
            raise UsageError(f"--month must be YYYY-MM, got: {month!r}") from None
        following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return first, following - dt.timedelta(days=1)
    if date is None:
        return today, today
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise UsageError(f"--date must be YYYY-MM-DD, got: {date!r}") from None
    return day, day


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    now = time.time()
    today = dt.datetime.fromtimestamp(now, tz=config.commune.tz).date()
    first, last = period(args.date, args.month, today)
    journal = Journal.open(config.state_dir / "journal.sqlite3", readonly=True)
    try:
        report = build_report(config, journal, first, last, now=now)
    finally:
        journal.close()
    if args.json:
        print(to_json(report))
    elif args.csv:
        print(to_csv(report), end="")
    else:
        _table(report, config.commune.tz)
    return 0


def _table(report: Report, tz: dt.tzinfo) -> None:
    """Settled rows in the coverage table; rows that can still play listed apart as pending, so a
    bulletin published ahead of its slot never reads as a miss (✗ 0%)."""
    console = wide_console()
    settled = [r for r in report.rows if not r.pending]
    waiting = [r for r in report.rows if r.pending]
    if settled or not waiting:
        render(replace(report, rows=settled), console)
    else:
        # the table would say nothing was dispatched; the pending lines say what was
        for line in _minutes_and_skips(report):
            console.print(line, markup=False, highlight=False)
    for r in waiting:
        at = dt.datetime.fromtimestamp(r.play_at, tz=tz)
        day = "" if at.date().isoformat() == r.date else f"{at:%Y-%m-%d} "
        line = (
            f"pending {r.date} {r.slot} {r.hamlet} ({r.status}): plays {day}{at:%H:%M}, "
            f"{r.ready}/{r.nodes} nodes ready, {r.played} played, "
            f"{r.households_reached}/{r.households} households so far"
        )
        console.print(line, markup=False, highlight=False)


def _minutes_and_skips(report: Report) -> list[str]:
    lines = [
        f"minutes aired ({status}): "
        + ", ".join(f"{cat} {m:.1f}" for cat, m in sorted(minutes.items()))
        for status, minutes in sorted(report.minutes.items())
    ]
    lines += [f"skipped {s['date']} {s['slot']} {s['hamlet']}: {s['reason']}" for s in report.skips]
    return lines
