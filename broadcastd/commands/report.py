"""`broadcastd report [--date D | --month M] [--json | --csv]`: coverage per slot and hamlet."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from broadcastd.config import load_config
from broadcastd.errors import UsageError
from broadcastd.journal import Journal
from broadcastd.reports import TARGET, Report, build_report, to_csv, to_json

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


def wide_console() -> Console:
    """A terminal keeps its width; piped output (mail, logs) is not squeezed into 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False)
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


def render(report: Report, console: Console) -> None:
    span = report.first if report.first == report.last else f"{report.first} .. {report.last}"
    table = Table(title=f"Coverage {span} (target {TARGET:.0%} of households)")
    for name in ("date", "slot", "hamlet", "kind", "nodes", "ready", "played", "failed"):
        table.add_column(name, justify="right" if name in ("nodes", "ready", "played") else "left")
    table.add_column("offline", justify="right")
    table.add_column("households", justify="right")
    table.add_column("%", justify="right")
    table.add_column("", justify="center")
    for r in report.rows:
        mark = "[green]✓[/]" if r.target_met else "[red]✗[/]"
        table.add_row(
            r.date,
            r.slot,
            r.hamlet,
            r.status,
            str(r.nodes),
            str(r.ready),
            str(r.played),
            str(r.failed),
            str(r.offline),
            f"{r.households_reached}/{r.households}",
            f"{r.percent:.0f}",
            mark,
        )
    if not report.rows:
        console.print(f"no dispatches journaled for {span}")
    else:
        console.print(table)
    for status, minutes in sorted(report.minutes.items()):
        parts = ", ".join(f"{cat} {m:.1f}" for cat, m in sorted(minutes.items()))
        console.print(f"minutes aired ({status}): {parts}")
    for skip in report.skips:
        console.print(
            f"[yellow]skipped[/] {skip['date']} {skip['slot']} {skip['hamlet']}: {skip['reason']}"
        )
