"""Two-person emergencies in the console: a pending request's page, its approval by a second,
different approver, and its withdrawal.

A pending request appears on every page of every logged-in person as it is opened (the live
stream carries it, see live.py), with its text, its hamlets and until when it may be approved.
Its page is the confirmation step: the approve button, and the token that makes the approval
count (confirm.py), exist only for an approver who did not ask for it. The server refuses the
rest whatever the page showed: a viewer or operator (role), the person who asked (here, and the
daemon refuses it again), a request no longer pending (approved, withdrawn or expired: the
daemon's status lists it no more).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response  # noqa: TC002 - FastAPI reads route annotations at run time

from broadcastd.console.acting import action_fields, result, send
from broadcastd.console.auth import Principal
from broadcastd.console.drafts import REQUEST_TEXT, audience
from broadcastd.console.web import address, console, page_context, page_user, render
from broadcastd.render.normalize import Normalizer

if TYPE_CHECKING:
    from broadcastd.console.live import Live

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(page_user)]
_REQUEST_ID = re.compile(r"req-[1-9][0-9]{0,8}")  # the daemon's request ids (approvals.py)


@dataclass(frozen=True, slots=True)
class RequestAction:
    """Approving (`approve`) or withdrawing (`cancel`) one pending request."""

    id: str
    cmd: str

    def fields(self) -> dict[str, str]:
        return {"id": self.id}

    def payload(self) -> dict[str, Any]:
        return {"cmd": self.cmd, "id": self.id}


def _checked(rid: str) -> str:
    if not _REQUEST_ID.fullmatch(rid):
        raise HTTPException(status_code=404, detail="no such request")
    return rid


async def _fresh(request: Request) -> Live:
    """The daemon's pending requests as of now, not as of the last second's poll."""
    live = console(request).live
    live.refresh()
    return await live.current()


@router.get("/requests/{rid}")
async def request_page(request: Request, me: User, rid: str) -> Response:
    c = console(request)
    config = c.loaded.config
    live = await c.live.current()
    pending = live.request(_checked(rid))
    context = await page_context(
        request, me, live=live, rid=rid, pending=pending, request_text=REQUEST_TEXT
    )
    if pending is None:
        return render(request, "request.html", context, status=404)
    mine = pending["operator"] == me.name
    normalizer = Normalizer(config.tts.lexicon, config.tts.numbers)
    action = RequestAction(rid, "approve")
    context |= {
        "mine": mine,
        "said": normalizer(pending["text"], config.commune.default_language),
        "reach": audience(config, live, tuple(pending["hamlets"])),
        "approve": (
            c.confirmations.issue(me.csrf, "approve", action.fields())
            if me.may("approver") and not mine
            else None
        ),
        "withdraw": (
            c.confirmations.issue(me.csrf, "withdraw", action.fields())
            if me.may("approver") or (mine and me.may("operator"))
            else None
        ),
    }
    return render(request, "request.html", context)


@router.post("/requests/{rid}/approve")
async def approve(request: Request, me: User, rid: str) -> Response:
    fields = await action_fields(request, me, "approver")
    c = console(request)
    pending = (await _fresh(request)).request(_checked(rid))
    if pending is None:
        await c.auth.refuse(me.name, address(request), f"approve {rid}: not pending")
        return await result(request, me, "approve", "gone")
    if pending["operator"] == me.name:
        await c.auth.refuse(me.name, address(request), f"approve {rid}: their own request")
        return await result(request, me, "approve", "own")
    return await send(
        request, me, fields, action="approve", draft=RequestAction(rid, "approve"), what=rid
    )


@router.post("/requests/{rid}/withdraw")
async def withdraw(request: Request, me: User, rid: str) -> Response:
    """The person who asked, or any approver (a request someone saw to be wrong)."""
    fields = await action_fields(request, me, "operator")
    c = console(request)
    pending = (await _fresh(request)).request(_checked(rid))
    if pending is None:
        await c.auth.refuse(me.name, address(request), f"withdraw {rid}: not pending")
        return await result(request, me, "withdraw", "gone")
    if pending["operator"] != me.name and not me.may("approver"):
        await c.auth.refuse(me.name, address(request), f"withdraw {rid}: someone else's request")
        raise HTTPException(status_code=403, detail="this needs the approver role")
    return await send(
        request, me, fields, action="withdraw", draft=RequestAction(rid, "cancel"), what=rid
    )
