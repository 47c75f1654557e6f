"""Cancel (with a correction), stop and volume from the pages that show what they act on: the
announcements and the schedule (cancel), the overview (stop all, or one hamlet), the speakers
(volume of a hamlet or of one speaker now, or hamlets' volume schedule). Each goes through a
confirmation page saying what it reaches, and is sent to the daemon as the logged-in operator
(acting.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from broadcastd.console.acting import action_fields, review, send
from broadcastd.console.auth import Principal
from broadcastd.console.drafts import (
    MAX_TEXT,
    FormError,
    audience,
    check_id,
    one,
    parse_cancel,
    parse_stop,
    parse_volume,
)
from broadcastd.console.sent import cancel_target, stoppable
from broadcastd.console.volumeschedule import in_force, parse_schedule, schedule_context
from broadcastd.console.web import console, page_context, page_user, redirect, render, require
from broadcastd.render.normalize import Normalizer

if TYPE_CHECKING:
    from broadcastd.config import Config
    from broadcastd.console.drafts import Fields
    from broadcastd.console.sent import Sent

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(page_user)]
D = TypeVar("D")
Parse = Callable[["Fields", "Config"], D]  # an action form's fields to its draft, or FormError
# An action's form page: shown again with the fields as sent, and what is wrong with them if any.
FormPage = Callable[[Request, Principal, "Fields", FormError | None], Awaitable[Response]]


async def _page(
    request: Request, me: Principal, template: str, *, status: int = 200, **extra: Any
) -> Response:
    names = {h.id: h.name for h in console(request).loaded.config.hamlets}
    context = await page_context(request, me, names=names, **extra)
    return render(request, template, context, status=status)


async def _target(request: Request, target: str) -> Sent:
    c = console(request)
    today = dt.datetime.fromtimestamp(c.clock(), tz=c.loaded.config.commune.tz).date()
    found = await c.journal.read(lambda journal, _: cancel_target(journal, target, today), None)
    if found is None:
        raise HTTPException(status_code=404, detail="no such announcement or playlist")
    return found


async def _drafted(
    request: Request, me: Principal, parse: Parse[D], form: FormPage, *, editable: bool
) -> tuple[Fields, D] | Response:
    """An operator's action form and the draft it makes, or the form again: to edit the draft
    (the review page's `edit` button, when `editable`), or saying what is wrong with it."""
    fields = await action_fields(request, me, "operator")
    try:
        if editable and one(fields, "edit"):
            return await form(request, me, fields, None)
        return fields, parse(fields, console(request).loaded.config)
    except FormError as exc:
        return await form(request, me, fields, exc)


# -- cancel ---------------------------------------------------------------------------------


async def _cancel_form(
    request: Request, me: Principal, fields: Fields, error: FormError | None
) -> Response:
    try:
        target = await _target(request, check_id(one(fields, "id")))
    except FormError:
        raise HTTPException(status_code=404, detail="no such announcement or playlist") from None
    c = console(request)
    config = c.loaded.config
    return await _page(
        request,
        me,
        "cancel.html",
        status=200 if error is None else 400,
        active="announce",
        target=target,
        error=error,
        values={name: one(fields, name) for name in fields},
        standard=config.emergency.correction,
        reach=audience(config, await c.live.current(), target.hamlets),
        now=c.clock(),
        max_text=MAX_TEXT,
    )


@router.get("/cancel")
async def cancel_form(request: Request, me: User, id: str = "") -> Response:  # noqa: A002 - the query name
    await require(request, me, "operator")
    if id.startswith("req-"):  # a pending emergency request is withdrawn from its own page
        return redirect(f"/requests/{quote(id)}")
    return await _cancel_form(request, me, {"id": [id]}, None)


@router.post("/cancel/review")
async def cancel_review(request: Request, me: User) -> Response:
    drafted = await _drafted(request, me, parse_cancel, _cancel_form, editable=True)
    if isinstance(drafted, Response):
        return drafted
    _, draft = drafted
    c = console(request)
    config = c.loaded.config
    target = await _target(request, draft.id)
    correction = config.emergency.correction if draft.correction == "config" else draft.say
    normalizer = Normalizer(config.tts.lexicon, config.tts.numbers)
    return await review(
        request,
        me,
        action="cancel",
        draft=draft,
        send_to="/cancel",
        edit_to="/cancel/review",
        back_to="/announce",
        danger=True,
        target=target,
        correction=correction,
        said=normalizer(correction, config.commune.default_language) if correction else "",
        reach=audience(config, await c.live.current(), target.hamlets),
    )


@router.post("/cancel")
async def cancel(request: Request, me: User) -> Response:
    drafted = await _drafted(request, me, parse_cancel, _cancel_form, editable=False)
    if isinstance(drafted, Response):
        return drafted
    fields, draft = drafted
    what = f"{draft.id} (correction: {draft.correction})"
    return await send(request, me, fields, action="cancel", draft=draft, what=what)


# -- stop -----------------------------------------------------------------------------------


@router.get("/stop")
async def stop_review(request: Request, me: User, hamlet: str = "all") -> Response:
    """The confirmation page itself: a stop needs nothing but where."""
    await require(request, me, "operator")
    c = console(request)
    config = c.loaded.config
    try:
        draft = parse_stop({"hamlet": [hamlet]}, config)
    except FormError as exc:
        raise HTTPException(status_code=404, detail="no such hamlet") from exc
    now = c.clock()
    nothing: list[Sent] = []
    withdrawn = await c.journal.read(
        lambda journal, _: stoppable(journal, draft.hamlets, now), nothing
    )
    return await review(
        request,
        me,
        action="stop",
        draft=draft,
        send_to="/stop",
        active="overview",
        danger=True,
        reach=audience(config, await c.live.current(), draft.hamlets),
        withdrawn=withdrawn,
    )


@router.post("/stop")
async def stop(request: Request, me: User) -> Response:
    fields = await action_fields(request, me, "operator")
    try:
        draft = parse_stop(fields, console(request).loaded.config)
    except FormError as exc:
        raise HTTPException(status_code=400, detail="no such hamlet") from exc
    what = "all hamlets" if draft.everywhere else ",".join(draft.hamlets)
    return await send(request, me, fields, action="stop", draft=draft, what=what)


# -- volume ---------------------------------------------------------------------------------


async def _volume_form(
    request: Request,
    me: Principal,
    fields: Fields,
    error: FormError | None,
    schedule_error: FormError | None = None,
) -> Response:
    c = console(request)
    try:
        draft = parse_volume(fields, c.loaded.config, need_level=False)
    except FormError as exc:
        raise HTTPException(status_code=404, detail="no such hamlet or speaker") from exc
    live = await c.live.current()
    return await _page(
        request,
        me,
        "volume.html",
        status=200 if error is None and schedule_error is None else 400,
        active="speakers",
        draft=draft,
        error=error,
        level=one(fields, "level"),
        reach=audience(c.loaded.config, live, draft.hamlets),
        speakers=[live.node(n) or {"node": n} for n in draft.nodes],
        schedule_error=schedule_error,
        **({} if draft.nodes else await schedule_context(request, draft.hamlets, fields)),
    )


@router.get("/volume")
async def volume_form(request: Request, me: User, hamlet: str = "", node: str = "") -> Response:
    await require(request, me, "operator")
    return await _volume_form(request, me, {"hamlet": [hamlet], "node": [node]}, None)


@router.post("/volume/review")
async def volume_review(request: Request, me: User) -> Response:
    drafted = await _drafted(request, me, parse_volume, _volume_form, editable=True)
    if isinstance(drafted, Response):
        return drafted
    _, draft = drafted
    c = console(request)
    live = await c.live.current()
    return await review(
        request,
        me,
        action="volume",
        draft=draft,
        send_to="/volume",
        edit_to="/volume/review",
        back_to="/speakers",
        active="speakers",
        reach=audience(c.loaded.config, live, draft.hamlets),
        speakers=[live.node(n) or {"node": n} for n in draft.nodes],
    )


@router.post("/volume")
async def volume(request: Request, me: User) -> Response:
    drafted = await _drafted(request, me, parse_volume, _volume_form, editable=False)
    if isinstance(drafted, Response):
        return drafted
    fields, draft = drafted
    where = ",".join(draft.nodes) or ",".join(draft.hamlets)
    return await send(
        request, me, fields, action="volume", draft=draft, what=f"{draft.level} to {where}"
    )


async def _schedule_form(
    request: Request, me: Principal, fields: Fields, error: FormError | None
) -> Response:
    """The volume page again, its schedule rows as typed and what is wrong with them."""
    typed = {k: v for k, v in fields.items() if k in ("hamlet", "at", "at_level")}
    return await _volume_form(request, me, typed, None, error)


@router.post("/volume/schedule/review")
async def schedule_review(request: Request, me: User) -> Response:
    drafted = await _drafted(request, me, parse_schedule, _schedule_form, editable=False)
    if isinstance(drafted, Response):
        return drafted
    _, draft = drafted
    c = console(request)
    return await review(
        request,
        me,
        action="schedule",
        draft=draft,
        send_to="/volume/schedule",
        back_to="/speakers",
        active="speakers",
        reach=audience(c.loaded.config, await c.live.current(), draft.hamlets),
        schedules=await in_force(request, draft.hamlets),
    )


@router.post("/volume/schedule")
async def schedule(request: Request, me: User) -> Response:
    fields = await action_fields(request, me, "operator")
    try:
        draft = parse_schedule(fields, console(request).loaded.config)
    except FormError as exc:
        raise HTTPException(status_code=400, detail="not a volume schedule") from exc
    levels = draft.fields()["schedule"] or "the config's"
    what = f"schedule {levels} for {','.join(draft.hamlets)}"
    return await send(request, me, fields, action="schedule", draft=draft, what=what)
