"""Live updates over Server-Sent Events, and the clips the speakers got, playable in the page.

`/events` sends the live picture (`event: state`) whenever what a viewer sees changes, a comment
every KEEPALIVE_S so proxies and phones keep the connection, and `event: expired` once the
session is over (the stream never keeps a session alive by itself). Streams are bounded per
console: each one holds a connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from broadcastd.console.auth import Principal
from broadcastd.console.schedule import MAX_DAYS, bulletin_clips, clip_known
from broadcastd.console.web import console, page_user
from broadcastd.errors import RenderError
from broadcastd.models import Clip
from broadcastd.render.bulletin import write_bulletin

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(page_user)]
POLL_S: Final = 1.0
KEEPALIVE_S: Final = 15.0
SESSION_CHECK_S: Final = 10.0
MAX_STREAMS: Final = 64
# Joining a bulletin runs ffmpeg (copying frames, cheap); a few at once, never one per viewer.
_JOINS = asyncio.Semaphore(2)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # a slot or hamlet id, as the config allows
MEDIA = {"mp3": "audio/mpeg", "opus": "audio/ogg", "wav": "audio/wav"}


def _event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@router.get("/events")
async def events(request: Request, me: User) -> Response:
    c = console(request)
    if c.streams >= MAX_STREAMS:
        raise HTTPException(status_code=503, detail="too many live pages open; try again later")

    async def stream() -> AsyncIterator[bytes]:
        c.streams += 1
        try:
            seen = -1
            quiet = checked = 0.0
            yield b"retry: 3000\n\n"
            while True:
                live = await c.live.current()
                if live.seq != seen:
                    seen, quiet = live.seq, 0.0
                    yield _event("state", live.as_json())
                elif quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield b": keepalive\n\n"
                if checked >= SESSION_CHECK_S:
                    checked = 0.0
                    if not await c.auth.peek(me):
                        yield _event("expired", {})
                        return
                await asyncio.sleep(POLL_S)
                quiet += POLL_S
                checked += POLL_S
        finally:
            c.streams -= 1

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/audio/{sha256}", dependencies=[Depends(page_user)])
async def audio(request: Request, sha256: str) -> Response:
    """A clip from the audio store, only if a journaled playlist of the last or next two weeks
    names it: what the speakers got, nothing else that happens to be in the store."""
    if not _SHA256.match(sha256):
        raise HTTPException(status_code=404, detail="no such clip")
    c = console(request)
    now = dt.datetime.fromtimestamp(c.clock(), tz=c.loaded.config.commune.tz).date()
    window = (now - dt.timedelta(days=MAX_DAYS), now + dt.timedelta(days=MAX_DAYS))
    known = await c.journal.read(
        lambda journal, _: clip_known(journal, sha256, *window), default=False
    )
    if not known:
        raise HTTPException(status_code=404, detail="no such clip")
    for ext, media in MEDIA.items():
        path = c.audio_root / f"{sha256}.{ext}"
        if path.is_file():
            return FileResponse(
                path, media_type=media, headers={"Cache-Control": "private, max-age=86400"}
            )
    raise HTTPException(status_code=404, detail="the clip is no longer in the audio store")


def _stored(root: Path, sha256: str) -> Clip | None:
    for ext in MEDIA:
        path = root / f"{sha256}.{ext}"
        if path.is_file():
            return Clip(sha256, path, path.stat().st_size, 0)
    return None


@router.get("/bulletin/{day}/{slot}/{hamlet}", dependencies=[Depends(page_user)])
async def bulletin(request: Request, day: str, slot: str, hamlet: str) -> Response:
    """A hamlet's whole bulletin for a dispatched slot as one file: the clips of its journaled
    playlist joined end to end (render/bulletin.py, as `broadcastd preview` does), in their own
    format, so what plays here is what the speakers decode."""
    c = console(request)
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise HTTPException(status_code=404, detail="no such bulletin") from None
    if not (_NAME.match(slot) and _NAME.match(hamlet)):
        raise HTTPException(status_code=404, detail="no such bulletin")
    nothing: list[str] = []
    shas = await c.journal.read(
        lambda journal, _: bulletin_clips(journal, date, slot, hamlet), nothing
    )
    if not shas:
        raise HTTPException(status_code=404, detail="no such bulletin")
    clips = [_stored(c.audio_root, sha) for sha in shas]
    if any(clip is None for clip in clips):
        raise HTTPException(status_code=404, detail="a clip is no longer in the audio store")
    found = [clip for clip in clips if clip is not None]
    ext = found[0].path.suffix.lstrip(".")
    work = Path(tempfile.mkdtemp(prefix="broadcastd-bulletin-"))
    out = work / f"{date.isoformat()}-{slot}-{hamlet}.{ext}"
    try:
        async with _JOINS:
            await write_bulletin(found, out, ext)
    except RenderError:
        shutil.rmtree(work, ignore_errors=True)
        raise HTTPException(status_code=503, detail="the bulletin could not be joined") from None
    return FileResponse(
        out,
        media_type=MEDIA[ext],
        headers={"Cache-Control": "private, no-store"},
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )
