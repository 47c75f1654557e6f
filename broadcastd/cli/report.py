"""`broadcastd report [--date D | --month M] [--json | --csv]`: coverage per slot and hamlet."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.errors import UsageError
from broadcastd.journal.reports import build_report, to_csv, to_json
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
    today = dt.datetime.fromtimestamp(time.time(), tz=config.commune.tz).date()
    first, last = period(args.date, args.month, today)
    journal = Journal.open(config.state_dir / "journal.sqlite3", readonly=True)
    try:
        report = build_report(config, journal, first, last)
    finally:
        journal.close()
    if args.json:
        print(to_json(report))
    elif args.csv:
        print(to_csv(report), end="")
    else:
        render(report, wide_console())
    return 0
