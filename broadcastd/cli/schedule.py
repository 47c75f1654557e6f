"""`broadcastd schedule`: preview what plays where, as a table or as JSON (DESIGN.md §4)."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from broadcastd.config import load_config
from broadcastd.errors import UsageError
from broadcastd.plan.slotplan import build_plan, on_air_seconds

if TYPE_CHECKING:
    import argparse

    from broadcastd.config import Config, LoadedConfig
    from broadcastd.models import PlanItem, SlotPlan

MAX_DAYS = 366


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    config = loaded.config
    start = _start_date(args.date, config)
    if not 1 <= args.days <= MAX_DAYS:
        msg = f"--days must be between 1 and {MAX_DAYS}, got: {args.days}"
        raise UsageError(msg)
    if args.hamlet is not None and args.hamlet not in {h.id for h in config.hamlets}:
        known = ", ".join(h.id for h in config.hamlets)
        msg = f"--hamlet must be one of {known}, got: {args.hamlet!r}"
        raise UsageError(msg)
    plans = build_plan(loaded, start, args.days, args.hamlet)
    if args.json:
        print(json.dumps([p.as_json() for p in plans], ensure_ascii=False, indent=2))
    else:
        Console(highlight=False).print(_table(loaded, plans))
    return 0


def _start_date(text: str | None, config: Config) -> dt.date:
    if text is None:
        return dt.datetime.now(config.commune.tz).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        msg = f"--date must be YYYY-MM-DD, got: {text!r}"
        raise UsageError(msg) from None


def _item(item: PlanItem) -> str:
    mark = "rec" if item.kind == "recording" else "tts"
    prio = "" if item.priority == "normal" else f" !{item.priority}"
    return f"{item.announcement} {item.lang}/{mark} {item.duration_s:.0f}s{prio}"


def _table(loaded: LoadedConfig, plans: list[SlotPlan]) -> Table:
    config = loaded.config
    table = Table(title=f"{config.commune.name}: bulletin plan", show_lines=True)
    for name in ("date", "slot", "hamlet"):
        table.add_column(name)
    table.add_column("items, in play order", no_wrap=True)
    table.add_column("on air", justify="right", no_wrap=True)
    any_dropped = any(p.dropped for p in plans)
    if any_dropped:
        table.add_column("dropped (too long)", no_wrap=True)
    for p in plans:
        seconds = on_air_seconds(loaded, p.items)
        row = [
            f"{p.date:%a %m-%d}",
            f"{p.slot} {p.play_at:%H:%M}",
            config.hamlet(p.hamlet).name,
            "\n".join(_item(i) for i in p.items) or "(nothing)",
            f"{int(seconds) // 60}m{int(seconds) % 60:02d}s",
        ]
        if any_dropped:
            row.append("\n".join(_item(i) for i in p.dropped))
        table.add_row(*row)
    return table
