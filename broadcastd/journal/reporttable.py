"""The coverage report as a terminal table (`broadcastd report`, `broadcastd demo`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from broadcastd.journal.reports import TARGET, Report


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
