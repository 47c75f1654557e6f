"""The web console for tests: built on a commune's config with a test clock, driven in-process
through httpx (no port), or served by a real uvicorn on a free loopback port (for a browser)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING

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


async def login(
    http: httpx.AsyncClient, name: str, password: str = PASSWORD, *, target: str = "/"
) -> httpx.Response:
    """Fetch the login form (for its CSRF token) and post it, as a browser does."""
    form = await http.get("/login")
    return await http.post(
        "/login",
        data={"username": name, "password": password, "csrf": csrf_of(form.text), "next": target},
    )


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
