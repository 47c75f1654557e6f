"""The coverage report as a terminal table (`broadcastd report`, `broadcastd demo`), and `inert`,
which every table of journaled values goes through."""

from __future__ import annotations

import unicodedata

from rich.console import Console
from rich.table import Table
from rich.text import Text

from broadcastd.journal.reports import TARGET, Report

# Control characters (escape sequences), format characters (bidi overrides, zero-width) and line
# or paragraph separators: none belongs in a table cell, and each can make a terminal lie.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def inert(value: object, style: str = "") -> Text:
    """`value` as plain text for a terminal: never read as rich markup, unprintables removed.

    Journaled values can come from the wire (a node's ack) or from an older journal; rendered as
    markup, `x [/bold]` made a table raise and `\\e[2J...` cleared the technician's screen.
    """
    text = "".join(c for c in str(value) if unicodedata.category(c) not in _UNPRINTABLE)
    return Text(text, style=style)


def wide_console() -> Console:
    """A terminal keeps its width; piped output (mail, logs) is not squeezed into 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


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
        mark = inert("✓", "green") if r.target_met else inert("✗", "red")
        table.add_row(
            *map(inert, (r.date, r.slot, r.hamlet, r.status, r.nodes, r.ready, r.played)),
            *map(inert, (r.failed, r.offline, f"{r.households_reached}/{r.households}")),
            inert(f"{r.percent:.0f}"),
            mark,
        )
    if not report.rows:
        console.print(inert(f"no dispatches journaled for {span}"))
    else:
        console.print(table)
    for status, minutes in sorted(report.minutes.items()):
        parts = ", ".join(f"{cat} {m:.1f}" for cat, m in sorted(minutes.items()))
        console.print(inert(f"minutes aired ({status}): {parts}"))
    for skip in report.skips:
        where = f" {skip['date']} {skip['slot']} {skip['hamlet']}: {skip['reason']}"
        console.print(Text.assemble(inert("skipped", "yellow"), inert(where)))
