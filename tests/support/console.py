"""The web console for tests: built on a commune's config with a test clock, driven in-process
through httpx (no port), or served by a real uvicorn on a free loopback port (for a browser)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from typing import TYPE_CHECKING, Any

import httpx
from argon2 import PasswordHasher

from broadcastd.config import load_config
from broadcastd.console import Console, create_app
from broadcastd.console.accounts import create_token, set_operator
from broadcastd.console.server import uvicorn_server
from broadcastd.transport.broker import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

PASSWORD = "đúng mật khẩu 2026"  # noqa: S105 - a test account's password
ORIGIN = "http://127.0.0.1:8080"
# argon2id still, at a fraction of the production cost, for tests that log in many times
QUICK_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_RESULT_ID = re.compile(r'<section class="result" data-outcome="ok" [^>]*data-id="([^"]*)"')


def build(config_path: Path, *, clock: Callable[[], float] | None = None) -> Console:
    loaded = load_config(config_path)
    return Console.build(loaded) if clock is None else Console.build(loaded, clock=clock)


def add_operator(ctx: Console, name: str, role: str = "viewer") -> None:
    set_operator(
        ctx.store,
        ctx.loaded.config,
        name,
        password=PASSWORD,
        role=role,
        now=ctx.clock(),
        create=True,
    )


def token(ctx: Console, name: str = "district") -> str:
    return create_token(ctx.store, name, "read", ctx.clock())


def client(ctx: Console, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A browser-like client of the console in this process, from `address`."""
    transport = httpx.ASGITransport(app=create_app(ctx), client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    if found is None:
        raise AssertionError("the page has no CSRF field")
    return found.group(1)


def hidden(page: str) -> dict[str, str]:
    """The hidden fields of a page (a confirmation page's form), as a browser posts them back."""
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


def form_of(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the one form on the page that posts to `action`."""
    return hidden(page.split(f'action="{action}"')[1].split("</form>", maxsplit=1)[0])


def done_id(page: str) -> str:
    """The id a successful action's page names (announce-N, req-N, a control id)."""
    found = _RESULT_ID.search(page)
    if found is None:
        raise AssertionError(f"not a successful action's page: {page[-2000:]}")
    return found.group(1)


async def confirm(http: httpx.AsyncClient, review: str, send: str, data: dict[str, Any]) -> str:
    """Post a form to its confirmation page (`review`), then confirm it (`send`), as an
    operator does; the answer's page."""
    page = await http.post(review, data={**data, "csrf": await csrf(http)})
    if page.status_code != 200:
        raise AssertionError(f"{review} answered {page.status_code}: {page.text[-2000:]}")
    done = await http.post(send, data=hidden(page.text))
    if done.status_code != 200:
        raise AssertionError(f"{send} answered {done.status_code}: {done.text[-2000:]}")
    return done.text


async def login(
    http: httpx.AsyncClient, name: str, password: str = PASSWORD, *, target: str = "/"
) -> httpx.Response:
    """Fetch the login form (for its CSRF token) and post it, as a browser does."""
    form = await http.get("/login")
    return await http.post(
        "/login",
        data={"username": name, "password": password, "csrf": csrf_of(form.text), "next": target},
    )


@contextlib.asynccontextmanager
async def signed_in(ctx: Console, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the console in this process, logged in as `name` (with PASSWORD)."""
    async with client(ctx) as http:
        answer = await login(http, name)
        if answer.status_code != 303:
            raise AssertionError(f"{name} could not log in: {answer.status_code}")
        yield http


async def csrf(http: httpx.AsyncClient) -> str:
    """The signed-in session's CSRF token, as every page's forms carry it."""
    return csrf_of((await http.get("/account")).text)


@contextlib.asynccontextmanager
async def served(ctx: Console) -> AsyncIterator[str]:
    """The console on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn_server(ctx, "127.0.0.1", port)
    task = asyncio.create_task(server.serve(), name="console")
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
