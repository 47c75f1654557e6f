"""Phát ngay: an announcement from the console. The form (text, language, hamlets, priority,
now or the next slot, exercise), then a confirmation page with exactly what the speakers will
read (the text normaliser's output, as `broadcastd say` prints it) and who will hear it, then
the request to the daemon as the logged-in operator.

Operators announce; an emergency needs an approver, and with `emergency.approvals: 2` it only
opens a request that a second, different approver confirms (see emergency.py).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response  # noqa: TC002 - FastAPI reads route annotations at run time

from broadcastd.console.acting import AUDIO_FORM_LIMIT, action_fields, review, send
from broadcastd.console.auth import Principal
from broadcastd.console.drafts import (
    MAX_RECORDING_BYTES,
    MAX_TEXT,
    REQUEST_TEXT,
    FormError,
    audience,
    hamlet_languages,
    next_slot,
    one,
    parse_announce,
)
from broadcastd.console.i18n import N_
from broadcastd.console.sent import recent
from broadcastd.console.web import console, page_context, page_user, render, require
from broadcastd.errors import RenderError
from broadcastd.plan.exercise import notice_item
from broadcastd.render.normalize import Normalizer
from broadcastd.render.recording import RecordingTooLongError, examine

if TYPE_CHECKING:
    from broadcastd.console.drafts import AnnounceDraft, Fields
    from broadcastd.console.live import Live
    from broadcastd.console.sent import Sent

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(page_user)]


def _now(request: Request) -> dt.datetime:
    c = console(request)
    return dt.datetime.fromtimestamp(c.clock(), tz=c.loaded.config.commune.tz)


async def _form(
    request: Request, me: Principal, fields: Fields, error: FormError | None
) -> Response:
    c = console(request)
    config = c.loaded.config
    today = _now(request).date()
    nothing: list[Sent] = []
    sent = await c.journal.read(lambda journal, _: recent(journal, today), nothing)
    slot, at = next_slot(config, _now(request))
    return render(
        request,
        "announce.html",
        await page_context(request, me)
        | {
            "error": error,
            "values": {name: one(fields, name) for name in fields},
            "chosen": [h for value in fields.get("hamlet", ()) for h in value.split(",")],
            "langs": sorted(config.tts.languages),
            "default_lang": config.commune.default_language,
            "hamlet_langs": hamlet_languages(config),
            "hamlets": config.hamlets,
            "may_emergency": me.may("approver"),
            "approvals": config.emergency.approvals,
            "max_text": MAX_TEXT,
            "max_mib": MAX_RECORDING_BYTES // (1024 * 1024),
            "max_seconds": int(config.audio.max_recording.total_seconds()),
            "request_text": REQUEST_TEXT,
            "next_slot": slot,
            "next_at": at,
            "sent": sent,
            "now": c.clock(),
            "names": {h.id: h.name for h in config.hamlets},
        },
        status=200 if error is None else 400,
    )


@router.get("/announce")
async def announce_form(request: Request, me: User) -> Response:
    await require(request, me, "operator")
    return await _form(request, me, {}, None)


async def _draft(request: Request, me: Principal, fields: Fields) -> AnnounceDraft:
    """The form's announcement; an emergency needs an approver (refused and journaled)."""
    draft = parse_announce(fields, console(request).loaded.config)
    if draft.priority == "emergency":
        await require(request, me, "approver")
    return draft


@router.post("/announce/review")
async def announce_review(request: Request, me: User) -> Response:
    fields = await action_fields(request, me, "operator", limit=AUDIO_FORM_LIMIT)
    if one(fields, "edit"):  # "Change" on the confirmation page: back to the filled form
        return await _form(request, me, fields, None)
    try:
        draft = await _draft(request, me, fields)
        await _check_recording(request, draft)
    except FormError as exc:
        return await _form(request, me, fields, exc)
    live = await console(request).live.current()
    return await review(
        request,
        me,
        action="announce",
        draft=draft,
        send_to="/announce",
        edit_to="/announce/review",
        danger=draft.priority == "emergency",
        **_preview(request, draft, live),
    )


async def _check_recording(request: Request, draft: AnnounceDraft) -> None:
    """Before the confirmation page: the recording is audio in a format phones write and no
    longer than `audio.max_recording`, as the daemon will find (it checks again)."""
    if not draft.audio:
        return
    limit = console(request).loaded.config.audio.max_recording.total_seconds()
    with tempfile.TemporaryDirectory(prefix="broadcastd-upload-") as work:
        path = Path(work) / "recording"
        await asyncio.to_thread(path.write_bytes, base64.urlsafe_b64decode(draft.audio))
        try:
            await examine(path, max_seconds=limit, what="recording")
        except RecordingTooLongError:
            raise FormError(
                N_("The recording is longer than %(seconds)s seconds."), seconds=round(limit)
            ) from None
        except RenderError:
            raise FormError(N_("This is not an audio file.")) from None


def _preview(request: Request, draft: AnnounceDraft, live: Live) -> dict[str, Any]:
    """What the confirmation page shows besides the draft: the words the engine will read, the
    places the normaliser had to guess, who will hear it and when."""
    c = console(request)
    config = c.loaded.config
    normalizer = Normalizer(config.tts.lexicon, config.tts.numbers)
    said, doubts = normalizer.explain(draft.text, draft.lang)
    notice = notice_item(draft.lang).text if draft.exercise else None
    slot, at = next_slot(config, _now(request))
    return {
        "said": said,
        "doubts": list(dict.fromkeys(doubts)),
        "notice": normalizer(notice, draft.lang) if notice else None,
        "reach": audience(config, live, draft.hamlets),
        "next_slot": slot,
        "next_at": at,
        "two_person": draft.priority == "emergency" and config.emergency.approvals == 2,
    }


@router.post("/announce")
async def announce_send(request: Request, me: User) -> Response:
    fields = await action_fields(request, me, "operator", limit=AUDIO_FORM_LIMIT)
    try:
        draft = await _draft(request, me, fields)
    except FormError as exc:
        return await _form(request, me, fields, exc)
    what = f"{draft.priority} to {','.join(draft.hamlets)}: {draft.text[:80]!r}"
    if draft.audio:
        what += f" with a {draft.audio_lang} recording of {draft.audio_bytes} bytes"
    return await send(request, me, fields, action="announce", draft=draft, what=what)
