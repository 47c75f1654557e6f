"""`broadcastd render [--date D] [--force]`: render the audio the plan needs, then a summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from broadcastd.config import load_config
from broadcastd.errors import RenderError, UsageError
from broadcastd.metrics import Metrics
from broadcastd.render.renderer import build_renderer

if TYPE_CHECKING:
    import argparse

    from broadcastd.config import LoadedConfig
    from broadcastd.models import RenderSummary, SlotPlan


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    plans = _plans(loaded, args.date)
    renderer = build_renderer(loaded.config, Metrics())
    err = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("rendering", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = asyncio.run(renderer.render_plans(plans, force=args.force, progress=progress))
    _print_summary(summary)
    if summary.failed:
        raise RenderError(
            f"{len(summary.failed)} clip(s) could not be rendered:\n  "
            + "\n  ".join(summary.failed)
        )
    return 0


def _plans(loaded: LoadedConfig, date: str | None) -> list[SlotPlan]:
    from broadcastd.plan.slotplan import build_plan  # noqa: PLC0415 - keeps `render --help` light

    config = loaded.config
    tz = config.commune.tz
    if date is not None:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise UsageError(f"--date must be YYYY-MM-DD, got: {date!r}") from None
        return build_plan(loaded, day)
    now = dt.datetime.now(tz)
    until = now + config.tts.render_ahead
    days = (until.date() - now.date()).days + 1
    return [p for p in build_plan(loaded, now.date(), days) if now <= p.play_at <= until]


def _print_summary(summary: RenderSummary) -> None:
    table = Table(title="render summary")
    table.add_column("engine")
    table.add_column("rendered", justify="right")
    for engine, count in sorted(summary.rendered.items()):
        table.add_row(engine, str(count))
    table.add_row("cached", str(summary.cached))
    table.add_row("failed", str(len(summary.failed)))
    console = Console()
    console.print(table)
    minutes, seconds = divmod(math.ceil(summary.audio_seconds), 60)
    console.print(f"audio: {minutes}m{seconds:02d}s, {summary.bytes / 1024:.0f} KiB")
