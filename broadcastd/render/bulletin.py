"""A hamlet's bulletin as its speakers hear it: the playlist's clips in play order, and one audio
file made of exactly those clips for staff to listen to before it airs (`broadcastd preview`).

The order is the dispatcher's: the intro chime, each item that renders (one that cannot be
rendered is left out, as on air), the outro chime; nothing at all when no item renders. The
gaps are inside the clips (see renderer.py), so joining the clips end to end is the broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.errors import RenderError
from broadcastd.models import CHIME_LANG
from broadcastd.render.loudness import finish_tool, start_tool
from broadcastd.render.renderer import chime_item

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broadcastd.models import Clip, PlanItem
    from broadcastd.render.renderer import Renderer

MUXERS = {".mp3": "mp3", ".wav": "wav", ".opus": "opus", ".ogg": "ogg"}
JOIN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Part:
    """One clip of the bulletin, or an item left out (`clip` None, `error` says why)."""

    name: str  # the announcement id, or intro / outro
    lang: str
    engine: str  # gtts, espeak, recording or chime; "" if left out
    clip: Clip | None
    item: PlanItem | None = None  # None for a chime
    error: str = ""


async def bulletin(renderer: Renderer, items: Sequence[PlanItem]) -> list[Part]:
    """The parts of the playlist for `items`, rendering what the store does not hold yet."""
    parts: list[Part] = []
    for item in items:
        try:
            clip, engine = await renderer.clip_and_engine(item)
        except RenderError as exc:
            parts.append(Part(item.announcement, item.lang, "", None, item, str(exc)))
        else:
            parts.append(Part(item.announcement, item.lang, engine, clip, item))
    if not any(p.clip for p in parts):
        return parts
    audio = renderer.audio
    for name, path in (("intro", audio.intro), ("outro", audio.outro)):
        if path is not None:
            clip, _ = await renderer.clip_and_engine(chime_item(path))
            chime = Part(name, CHIME_LANG, "chime", clip)
            parts = [chime, *parts] if name == "intro" else [*parts, chime]
    return parts


async def write_bulletin(clips: Sequence[Clip], out: Path, fmt: str) -> None:
    """Join `clips` end to end into `out` (its suffix picks the format: .mp3, .wav, .opus,
    .ogg). In the clips' own format the encoded frames are copied, not encoded again: the file
    is byte for byte what the speakers decode. Written to a temporary file, then renamed."""
    muxer = MUXERS.get(out.suffix.lower())
    if muxer is None:
        raise RenderError(f"cannot write {out}: name a .mp3, .wav, .opus or .ogg file")
    # the concat demuxer's list (it must seek it: a file, not a pipe); store paths are hex names,
    # so quoting them needs no escapes
    listing = "".join(f"file '{c.path.absolute()}'\n" for c in clips)
    same = out.suffix.lower() == f".{fmt}" or (fmt == "opus" and muxer == "ogg")
    codec = ["-c", "copy"] if same else []
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    what = f"preview {out.name}"
    try:
        with tempfile.TemporaryDirectory(prefix="broadcastd-join-") as work:
            listed = Path(work) / "clips.txt"
            listed.write_text(listing, encoding="utf-8")
            argv = [
                "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-f", "concat", "-safe", "0", "-i", str(listed),
                *codec, "-map_metadata", "-1", "-f", muxer, str(tmp),
            ]  # fmt: skip
            proc = await start_tool(argv, what=what)
            await finish_tool(proc, "ffmpeg", b"", what=what, limit_s=JOIN_TIMEOUT_S)
        await asyncio.to_thread(tmp.replace, out)
    except OSError as exc:
        raise RenderError(f"cannot write {out}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def on_air_seconds(parts: Sequence[Part]) -> float:
    return sum(p.clip.duration_ms for p in parts if p.clip is not None) / 1000


__all__ = ["Part", "bulletin", "on_air_seconds", "write_bulletin"]
