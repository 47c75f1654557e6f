"""The console's ASGI application: its routes and guards (allowed hosts, body size, security
headers, the login redirect)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from broadcastd import __version__
from broadcastd.console import announce, api, controls, emergency, login, pages, stream
from broadcastd.console.acting import AUDIO_FORM_LIMIT
from broadcastd.console.i18n import HERE
from broadcastd.console.web import NeedLoginError, redirect, render

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, MutableMapping

    from broadcastd.console.context import Console


ROUTERS = (
    api.router,
    login.router,
    pages.router,
    stream.router,
    announce.router,
    emergency.router,
    controls.router,
)
MAX_BODY = 64 * 1024  # no other route of this console takes more (an action form: 32 KiB)
# Phát ngay's form may carry a recording, as large as the daemon takes (base64url).
AUDIO_PATHS: Final = ("/announce", "/announce/review")
# blob: media is a recording made in this page, heard back before it would be sent.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


class BodyLimit:
    """Refuse a request body over `limit` bytes, declared or streamed, before a route reads it."""

    def __init__(self, app: Any, limit: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = dict(larger or {})

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.limit)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            await JSONResponse({"detail": "request too large"}, status_code=413)(
                scope, receive, send
            )
            return
        seen = 0

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(status_code=413, detail="request too large")
            return message

        await self.app(scope, limited, send)


def allowed_hosts(listen: str) -> list[str]:
    host = listen.rsplit(":", 1)[0]
    return sorted({host, host.strip("[]"), "127.0.0.1", "localhost", "::1", "[::1]"})


def create_app(ctx: Console) -> FastAPI:
    app = FastAPI(
        title="broadcastd console API",
        version=__version__,
        description="Read-only state of a commune's loudspeakers, for the district's systems",
        docs_url=None,  # Swagger UI loads scripts from a CDN; the description is served as JSON
        redoc_url=None,
        openapi_url=None,
    )
    app.state.console = ctx
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(NeedLoginError)
    async def _login(_: Request, exc: NeedLoginError) -> Response:
        from urllib.parse import quote  # noqa: PLC0415 - only on this path

        return redirect(f"/login?next={quote(exc.path, safe='/')}")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith(("/api/", "/events")) or exc.status_code in (413, 415):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return render(
            request,
            "error.html",
            {"status": exc.status_code, "detail": exc.detail},
            status=exc.status_code,
        )

    @app.middleware("http")
    async def _headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.add_middleware(
        BodyLimit,
        limit=MAX_BODY,
        larger=dict.fromkeys(AUDIO_PATHS, AUDIO_FORM_LIMIT),
    )
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts(ctx.loaded.config.console.listen)
    )
    return app
