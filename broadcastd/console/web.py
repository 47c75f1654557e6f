"""What every route shares: who is asking, reading a form safely, CSRF and role checks, rendering.

Pages answer an anonymous visitor with a redirect to /login; the API answers 401. A form is only
ever `application/x-www-form-urlencoded`, at most FORM_LIMIT bytes, and every POST must carry the
CSRF token of its session (or, for the login form, the pre-session token of its cookie) and, if
the browser says where it comes from, come from this console's own origin.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from broadcastd.console.auth import csrf_matches
from broadcastd.console.i18n import pick

if TYPE_CHECKING:
    from broadcastd.console.auth import Principal
    from broadcastd.console.context import Console

SESSION_COOKIE: Final = "bcast_session"
PRELOGIN_COOKIE: Final = "bcast_prelogin"  # the login form's double-submit CSRF token
LANG_COOKIE: Final = "bcast_lang"
FORM_LIMIT: Final = 8 * 1024
MAX_FIELDS: Final = 16


class NeedLoginError(Exception):
    """A page was asked for without a live session: answered with a redirect to /login."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def address(request: Request) -> str:
    return request.client.host if request.client else "-"


def lang_of(request: Request) -> str:
    return pick(request.cookies.get(LANG_COOKIE))


async def page_user(request: Request) -> Principal:
    """The operator behind the session cookie; NeedLoginError (a redirect) without one."""
    principal = await console(request).auth.session(
        request.cookies.get(SESSION_COOKIE), address(request)
    )
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NeedLoginError(target)
    return principal


async def api_user(request: Request) -> Principal:
    """An API token (`Authorization: Bearer`) or, for the pages' own scripts, a session."""
    c = console(request)
    header = request.headers.get("authorization")
    principal = await c.auth.bearer(header, address(request)) if header else None
    if principal is None and not header:
        principal = await c.auth.session(request.cookies.get(SESSION_COOKIE), address(request))
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="authentication required: a session or an API token (Authorization: Bearer)",
            headers={"WWW-Authenticate": 'Bearer realm="broadcastd"'},
        )
    return principal


def safe_next(target: str | None) -> str:
    """Only a path on this console: never another site (an open redirect), never `//host`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


async def read_fields(
    request: Request, *, limit: int = FORM_LIMIT, max_fields: int = MAX_FIELDS
) -> dict[str, list[str]]:
    """Every value of every field (a list of checkboxes shares one name)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(status_code=415, detail="forms are sent url-encoded")
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(status_code=413, detail=f"a form has at most {limit} bytes")
    try:
        return parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=max_fields,
            strict_parsing=False,
        )
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status_code=400, detail="malformed form") from None


async def read_form(request: Request) -> dict[str, str]:
    return {name: values[0] for name, values in (await read_fields(request)).items()}


def same_origin(request: Request) -> bool:
    """False if the browser names another origin (Origin, else Referer) for this POST."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return claimed is None
    parts = urlsplit(claimed)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


async def checked_fields(
    request: Request, principal: Principal, *, limit: int = FORM_LIMIT, max_fields: int = MAX_FIELDS
) -> dict[str, list[str]]:
    """The fields of a signed-in POST, refused (403, journaled) without its session's CSRF token
    or from another origin."""
    fields = await read_fields(request, limit=limit, max_fields=max_fields)
    token = fields.get("csrf", [None])[0]
    if not same_origin(request) or not csrf_matches(principal.csrf, token):
        await console(request).auth.refuse(
            principal.name, address(request), f"CSRF check failed on {request.url.path}"
        )
        raise HTTPException(status_code=403, detail="the form's security token is missing or wrong")
    return fields


async def checked_form(request: Request, principal: Principal) -> dict[str, str]:
    """`checked_fields`, one value per field."""
    return {name: values[0] for name, values in (await checked_fields(request, principal)).items()}


async def require(request: Request, principal: Principal, role: str) -> None:
    if not principal.may(role):
        await console(request).auth.refuse(
            principal.name, address(request), f"role {principal.role} may not {request.url.path}"
        )
        raise HTTPException(status_code=403, detail=f"this needs the {role} role")


def prelogin_token(request: Request) -> str:
    token = request.cookies.get(PRELOGIN_COOKIE, "")
    return token if 20 <= len(token) <= 64 else secrets.token_urlsafe(24)


def set_cookie(response: Any, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> HTMLResponse:
    env = console(request).envs[lang_of(request)]
    html = env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


async def page_context(
    request: Request, me: Principal, *, active: str = "announce", **extra: Any
) -> dict[str, Any]:
    """What every logged-in page's layout reads: who, their CSRF token, the commune, where they
    are (the menu entry `active`, the path) and the daemon's live state; `extra` adds or
    overrides."""
    c = console(request)
    return {
        "me": me,
        "csrf": me.csrf,
        "commune": c.loaded.config.commune,
        "path": request.url.path,
        "active": active,
        "live": await c.live.current(),
        **extra,
    }


def redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)
