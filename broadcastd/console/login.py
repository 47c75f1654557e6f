"""Logging in and out, the language switch and the account page (own sessions; an approver may
end anyone's, e.g. for a lost phone)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response  # noqa: TC002 - FastAPI reads route annotations at run time

from broadcastd.console.accounts import digest
from broadcastd.console.auth import Principal, csrf_matches
from broadcastd.console.i18n import LANGS
from broadcastd.console.web import (
    LANG_COOKIE,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    address,
    checked_form,
    console,
    page_user,
    prelogin_token,
    read_form,
    redirect,
    render,
    require,
    safe_next,
    same_origin,
    set_cookie,
)

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(page_user)]
YEAR_S = 365 * 86400
SESSIONS_SQL = "SELECT digest, operator, created, seen, address FROM sessions"


def _login_page(request: Request, *, error: str, status: int, target: str) -> Response:
    token = prelogin_token(request)
    response = render(
        request,
        "login.html",
        {
            "csrf": token,
            "error": error,
            "next": target,
            "commune": console(request).loaded.config.commune,
        },
        status=status,
    )
    set_cookie(response, request, PRELOGIN_COOKIE, token, max_age=3600)
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query name
    return _login_page(request, error="", status=200, target=safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    c = console(request)
    form = await read_form(request)
    target = safe_next(form.get("next"))
    if not same_origin(request) or not csrf_matches(
        request.cookies.get(PRELOGIN_COOKIE, ""), form.get("csrf")
    ):
        await c.auth.refuse(
            form.get("username", "-")[:64], address(request), "login: CSRF check failed"
        )
        return _login_page(request, error="csrf", status=403, target=target)
    result = await c.auth.login(
        form.get("username", ""), form.get("password", ""), address(request)
    )
    if not result.ok:
        status = 429 if result.reason == "throttled" else 401
        return _login_page(request, error=result.reason, status=status, target=target)
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # whatever session this browser had before is over: a new id for a new login
        await asyncio.to_thread(c.store.end_session, digest(old))
    response = redirect(target)
    set_cookie(response, request, SESSION_COOKIE, result.session_id, max_age=None)
    response.delete_cookie(PRELOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, me: User) -> Response:
    await checked_form(request, me)
    await console(request).auth.logout(me, address(request))
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/lang")
async def choose_language(request: Request) -> Response:
    """Works before login too: the login page is the first one an official sees."""
    c = console(request)
    form = await read_form(request)
    me = await c.auth.session(request.cookies.get(SESSION_COOKIE), address(request))
    expected = me.csrf if me else request.cookies.get(PRELOGIN_COOKIE, "")
    if not same_origin(request) or not csrf_matches(expected, form.get("csrf")):
        await c.auth.refuse(me.name if me else "-", address(request), "language: CSRF check failed")
        raise HTTPException(status_code=403, detail="the form's security token is missing or wrong")
    lang = form.get("lang", "")
    if lang not in LANGS:
        raise HTTPException(status_code=400, detail=f"language must be one of {', '.join(LANGS)}")
    response = redirect(safe_next(form.get("next")))
    set_cookie(response, request, LANG_COOKIE, lang, max_age=YEAR_S)
    return response


@router.get("/account")
async def account(request: Request, me: User) -> Response:
    c = console(request)
    params: tuple[str, ...]
    if me.may("approver"):  # an approver sees everyone's sessions, to end a lost phone's
        sql, params = f"{SESSIONS_SQL} ORDER BY operator, seen DESC", ()
    else:
        sql, params = f"{SESSIONS_SQL} WHERE operator=? ORDER BY seen DESC", (me.name,)
    rows = await asyncio.to_thread(c.store.query, sql, params)
    sessions = [
        {
            "handle": d[:16],
            "operator": op,
            "created": created,
            "seen": seen,
            "address": addr,
            "mine": d == me.session,
        }
        for d, op, created, seen, addr in rows
    ]
    live = await c.live.current()
    return render(
        request,
        "account.html",
        {
            "me": me,
            "live": live,
            "csrf": me.csrf,
            "active": "account",
            "sessions": sessions,
            "commune": c.loaded.config.commune,
            "path": request.url.path,
        },
    )


@router.post("/account/sessions/end")
async def end_session(request: Request, me: User) -> Response:
    """End one session by its handle: one's own always; anyone else's only as an approver."""
    c = console(request)
    form = await checked_form(request, me)
    handle = form.get("session", "")
    if len(handle) != 16:
        raise HTTPException(status_code=400, detail="no such session")
    rows = await asyncio.to_thread(
        c.store.query,
        "SELECT digest, operator FROM sessions WHERE substr(digest, 1, 16)=?",
        (handle,),
    )
    if not rows:
        raise HTTPException(status_code=404, detail="no such session (it may have ended)")
    target_digest, operator = rows[0]
    if operator != me.name:
        await require(request, me, "approver")
    await c.auth.end(target_digest, operator, by=me.name, address=address(request))
    if target_digest == me.session:
        response = redirect("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return redirect("/account")
