"""`broadcastd preview --hamlet H --out FILE [--date D] [--slot S]`: hear a bulletin before it airs.

Writes what one hamlet will hear in one slot as one audio file, made of the clips the daemon would
publish (the same renderer and, run as the daemon's user, the same cache in `state_dir`), in the
same order: chimes, gaps and every item. Prints the script: when each part starts, the
announcement, its language, the engine that spoke it, its length and the words spoken. Without
`--slot`, the next slot of the day (`--date`) or from now.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from broadcastd.config import load_config
from broadcastd.errors import BroadcastdError, RenderError, UsageError
from broadcastd.metrics import Metrics
from broadcastd.plan.slotplan import build_plan
from broadcastd.render.bulletin import Part, bulletin, on_air_seconds, write_bulletin
from broadcastd.render.normalize import Normalizer
from broadcastd.render.renderer import build_renderer
from broadcastd.render.store import AudioStore

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from broadcastd.config import Config, LoadedConfig
    from broadcastd.models import SlotPlan
    from broadcastd.render.renderer import Renderer


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    config = loaded.config
    plan = _plan(loaded, args.hamlet, args.date, args.slot)
    where = f"{plan.hamlet} in {plan.slot} on {plan.date}"
    if not plan.items:
        raise BroadcastdError(f"nothing plays in {where}: no file written")
    with _store(config) as (store, note):
        renderer = build_renderer(config, Metrics(), store=store)
        parts = asyncio.run(_write(renderer, plan, args.out, where))
        _print_script(config, plan, parts, args.out, note)
    left_out = [p for p in parts if p.clip is None]
    if left_out:
        raise RenderError(
            f"{len(left_out)} item(s) could not be rendered; the daemon would leave them out too"
        )
    return 0


async def _write(renderer: Renderer, plan: SlotPlan, out: Path, where: str) -> list[Part]:
    parts = await bulletin(renderer, plan.items)
    clips = [p.clip for p in parts if p.clip is not None]
    if not clips:
        raise RenderError(f"no item of {where} could be rendered: {parts[0].error}")
    await write_bulletin(clips, out, renderer.audio.format)
    return parts


def _plan(loaded: LoadedConfig, hamlet: str, date: str | None, slot: str | None) -> SlotPlan:
    config = loaded.config
    hamlets = [h.id for h in config.hamlets]
    if hamlet not in hamlets:
        raise UsageError(f"--hamlet must be one of {', '.join(hamlets)}, got: {hamlet!r}")
    if slot is not None and slot not in config.slots:
        raise UsageError(f"--slot must be one of {', '.join(config.slots)}, got: {slot!r}")
    now = dt.datetime.now(config.commune.tz)
    if date is not None:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise UsageError(f"--date must be YYYY-MM-DD, got: {date!r}") from None
        plans = build_plan(loaded, day, 1, hamlet)
    else:  # every slot plays daily: within two days each has a next time
        plans = [p for p in build_plan(loaded, now.date(), 2, hamlet) if p.play_at > now]
    return next(p for p in plans if slot is None or p.slot == slot)


@contextlib.contextmanager
def _store(config: Config) -> Iterator[tuple[AudioStore, str]]:
    """The daemon's clip cache when this user owns `state_dir` (a preview then also renders ahead
    of the slot); otherwise a temporary one: clips written by root or by staff would be files the
    daemon cannot read, and a preview must never create or break `state_dir`."""
    state = config.state_dir
    try:
        own = state.is_dir() and state.stat().st_uid == os.geteuid()
    except OSError:
        own = False
    if own and os.access(state, os.W_OK | os.X_OK):
        yield AudioStore(state / "audio"), ""
        return
    with tempfile.TemporaryDirectory(prefix="broadcastd-preview-") as tmp:
        note = (
            f"rendered afresh in a temporary folder: {state} is not this user's "
            "(run preview as the daemon's user to use and fill its cache)"
        )
        yield AudioStore(Path(tmp)), note


def _print_script(config: Config, plan: SlotPlan, parts: list[Part], out: Path, note: str) -> None:
    hamlet = config.hamlet(plan.hamlet)
    total = on_air_seconds(parts)
    console = Console(highlight=False)
    if not console.is_terminal:  # piped or mailed: do not squeeze the text into 80 columns
        console = Console(highlight=False, width=160)
    title = (
        f"{hamlet.name} ({hamlet.id}), {plan.slot} {plan.play_at:%Y-%m-%d %H:%M}: "
        f"{_mmss(total)} written to {out}"
    )
    console.print(Text(title), soft_wrap=True)
    table = Table()
    table.add_column("at", justify="right", no_wrap=True)
    for name in ("item", "lang", "engine"):
        table.add_column(name, no_wrap=True)
    table.add_column("length", justify="right", no_wrap=True)
    table.add_column("spoken")
    start = 0.0
    # what the engine was given, as `say` prints it: "19h30" is heard as "mười chín giờ ..."
    spoken = Normalizer(config.tts.lexicon, config.tts.numbers)
    for part in parts:
        seconds = part.clip.duration_ms / 1000 if part.clip is not None else 0.0
        at = _mmss(start) if part.clip is not None else "-"
        engine = part.engine or "left out"
        cells = (at, part.name, part.lang, engine, f"{seconds:.1f}s", _spoken(part, spoken))
        table.add_row(*(Text(c) for c in cells))
        start += seconds
    console.print(table)
    for item in plan.dropped:
        line = f"dropped (slot over {config.slots[plan.slot].max_duration}): {item.announcement}"
        console.print(Text(f"{line} {item.lang}"))
    if note:
        console.print(Text(note))


def _spoken(part: Part, normalizer: Normalizer) -> str:
    if part.clip is None:
        return f"not rendered: {part.error}"
    if part.item is None:
        return "(chime)"
    if part.item.text is not None:
        return normalizer(part.item.text, part.lang)
    recording = part.item.recording
    return f"(recording {recording.name})" if recording is not None else ""


def _mmss(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"
