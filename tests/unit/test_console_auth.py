"""The console's door: every route needs a session or a token, CSRF on every form, roles, login
throttling, session ids and expiry, and a journal of who came and what they were refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fastapi.routing import APIRoute
from support import console as cs
from support.clock import FakeClock
from support.communes import write_sang_moc

from broadcastd.console import accesslog
from broadcastd.console.app import ROUTERS
from broadcastd.console.auth import ACCOUNT_FAILURES, ADDRESS_FAILURES, THROTTLE_WINDOW_S

if TYPE_CHECKING:
    from collections.abc import Iterator

    from broadcastd.console import Console

SAMPLE = {
    "node": "bc-01",
    "sha256": "0" * 64,
    "rid": "req-1",
    "day": "2026-12-06",
    "slot": "noon",
    "hamlet": "ban-chuong",
}
OPEN = {"/login", "/lang"}  # reachable before login (each with its own pre-session CSRF token)


pytestmark = pytest.mark.usefixtures("quick_hashes")  # cheap argon2 (conftest.py)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def ctx(tmp_path, clock) -> Iterator[Console]:
    console = cs.build(write_sang_moc(tmp_path), clock=clock)
    cs.add_operator(console, "van-hoa", "viewer")
    cs.add_operator(console, "chu-tich", "approver")
    yield console
    console.close()


def routes() -> list[tuple[str, str]]:
    found = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            path = route.path.format(**SAMPLE)
            found += [(method, path) for method in sorted(route.methods or ())]
    return found


def access(ctx: Console, kind: str | None = None) -> list[accesslog.AccessEntry]:
    return accesslog.entries(ctx.store, limit=100, kind=kind)


async def test_every_route_without_a_session_or_token_is_refused(ctx):
    found = routes()
    assert len(found) >= 15, found
    async with cs.client(ctx) as http:
        for method, path in found:
            if path in OPEN:
                continue
            answer = await http.request(method, path)
            if path.startswith("/api/"):
                assert answer.status_code == 401, (method, path)
                assert answer.headers["www-authenticate"].startswith("Bearer")
            else:
                assert answer.status_code == 303, (method, path)
                assert answer.headers["location"].startswith("/login?next=/"), (method, path)


async def test_login_gives_a_fresh_httponly_strict_session_and_journals_it(ctx):
    async with cs.client(ctx) as http:
        http.cookies.set("bcast_session", "planted-by-someone-else", domain="127.0.0.1")
        answer = await cs.login(http, "van-hoa", target="/speakers")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/speakers"
        cookie = next(c for c in answer.headers.get_list("set-cookie") if "bcast_session=" in c)
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        session = http.cookies["bcast_session"]
        assert session != "planted-by-someone-else"
        assert len(session) >= 40
        assert (await http.get("/")).status_code == 200
        # logging in again replaces the session: the old id is dead
        await cs.login(http, "van-hoa")
        assert http.cookies["bcast_session"] != session
        async with cs.client(ctx) as other:
            other.cookies.set("bcast_session", session, domain="127.0.0.1")
            assert (await other.get("/")).status_code == 303
    logins = access(ctx, "login")
    assert [(e.operator, e.address) for e in logins] == [("van-hoa", "127.0.0.1")] * 2


async def test_an_unknown_account_and_a_wrong_password_look_alike_and_are_journaled(ctx):
    async with cs.client(ctx) as http:
        wrong = await cs.login(http, "van-hoa", "not the password")
        nobody = await cs.login(http, "nobody")
    assert wrong.status_code == nobody.status_code == 401
    assert "Sai tên hoặc mật khẩu" in wrong.text
    assert "Sai tên hoặc mật khẩu" in nobody.text
    details = [e.detail for e in access(ctx, "refused")]
    assert details == ["login: unknown account", "login: wrong password"]


async def test_the_sixth_wrong_password_in_a_minute_is_throttled_even_if_right(ctx, clock):
    async with cs.client(ctx) as http:
        for _ in range(ACCOUNT_FAILURES):
            assert (await cs.login(http, "van-hoa", "guess")).status_code == 401
        sixth = await cs.login(http, "van-hoa")  # the right password, too late
        assert sixth.status_code == 429
        assert "Wait a minute" in sixth.text or "Hãy đợi một phút" in sixth.text
        # another account is not locked by someone guessing at this one
        assert (await cs.login(http, "chu-tich")).status_code == 303
        clock.t += THROTTLE_WINDOW_S + 1
        assert (await cs.login(http, "van-hoa")).status_code == 303
    assert "login throttled" in [e.detail for e in access(ctx, "refused")]


async def test_one_address_guessing_many_accounts_is_throttled(ctx):
    async with cs.client(ctx, address="203.0.113.9") as http:
        for k in range(ADDRESS_FAILURES):
            assert (await cs.login(http, f"guess-{k}", "x")).status_code == 401
        assert (await cs.login(http, "van-hoa")).status_code == 429
    async with cs.client(ctx, address="127.0.0.1") as http:
        assert (await cs.login(http, "van-hoa")).status_code == 303


async def test_forms_without_their_csrf_token_or_from_another_origin_are_refused(ctx):
    async with cs.client(ctx) as http:
        form = await http.get("/login")
        token = cs.csrf_of(form.text)
        fields = {"username": "van-hoa", "password": cs.PASSWORD}
        assert (await http.post("/login", data=fields)).status_code == 403
        assert (await http.post("/login", data={**fields, "csrf": "x" * 32})).status_code == 403
        assert (await cs.login(http, "van-hoa")).status_code == 303
        good = await cs.csrf(http)
        assert good != token
        for path, data in (
            ("/logout", {"bye": "1"}),
            ("/lang", {"lang": "en"}),
            ("/account/sessions/end", {"session": "0" * 16}),
        ):
            assert (await http.post(path, data=data)).status_code == 403, path
            wrong = {**data, "csrf": token}  # the pre-login token is not this session's
            assert (await http.post(path, data=wrong)).status_code == 403, path
            hostile = await http.post(
                path, data={**data, "csrf": good}, headers={"Origin": "http://evil.example"}
            )
            assert hostile.status_code == 403, path
        assert (await http.get("/")).status_code == 200, "the refusals changed nothing"
    assert sum("CSRF" in e.detail for e in access(ctx, "refused")) >= 11


async def test_a_viewer_cannot_end_someone_elses_session_but_an_approver_can(ctx):
    async with cs.client(ctx) as chair, cs.client(ctx) as viewer:
        await cs.login(chair, "chu-tich")
        await cs.login(viewer, "van-hoa")
        chair_page = await chair.get("/account")
        handle = chair_page.text.split('data-session="')[1].split('"')[0]
        refused = await viewer.post(
            "/account/sessions/end", data={"session": handle, "csrf": await cs.csrf(viewer)}
        )
        assert refused.status_code == 403
        assert (await chair.get("/")).status_code == 200, "the chair's session survived"
        everyone = (await chair.get("/account")).text
        viewer_handle = everyone.split('data-session="')[2].split('"')[0]
        ended = await chair.post(
            "/account/sessions/end", data={"session": viewer_handle, "csrf": await cs.csrf(chair)}
        )
        assert ended.status_code == 303
        assert (await viewer.get("/")).status_code == 303, "the viewer's session is over"
    refused_rows = access(ctx, "refused")
    assert any("role viewer may not" in e.detail for e in refused_rows)
    assert "session ended by chu-tich" in [e.detail for e in access(ctx, "logout")]


async def test_a_session_expires_after_idling_and_logout_ends_it(ctx, clock):
    idle = ctx.loaded.config.console.session_idle.total_seconds()
    async with cs.client(ctx) as http:
        await cs.login(http, "van-hoa")
        clock.t += idle - 60
        assert (await http.get("/")).status_code == 200  # activity keeps it alive
        clock.t += idle + 1
        assert (await http.get("/")).status_code == 303
        await cs.login(http, "van-hoa")
        token = await cs.csrf(http)
        assert (await http.post("/logout", data={"csrf": token})).status_code == 303
        assert (await http.get("/")).status_code == 303
    assert [e.kind for e in access(ctx)][:4] == ["logout", "login", "expired", "login"]


async def test_api_tokens_are_bearer_only_and_wrong_ones_are_refused(ctx):
    secret = cs.token(ctx)
    stored = ctx.store.tokens()[0]
    assert secret.split("_")[2] not in stored.digest, "only a digest of the secret is kept"
    async with cs.client(ctx) as http:
        ok = await http.get("/api/v1/hamlets", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200
        assert [h["id"] for h in ok.json()] == ["ban-chuong", "na-lay"]
        forged = secret[:-4] + "AAAA"
        for bad in (f"Bearer {forged}", f"Basic {secret}", "Bearer ", secret):
            answer = await http.get("/api/v1/hamlets", headers={"Authorization": bad})
            assert answer.status_code == 401, bad
        # a token opens the read-only API, never the pages
        page = await http.get("/", headers={"Authorization": f"Bearer {secret}"})
        assert page.status_code == 303


async def test_bodies_are_limited_and_forms_must_be_urlencoded(ctx):
    async with cs.client(ctx) as http:
        big = await http.post("/login", content=b"a=" + b"x" * 70_000)
        assert big.status_code == 413
        json_body = await http.post("/login", json={"username": "van-hoa"})
        assert json_body.status_code == 415
        evil_host = await http.get("/login", headers={"Host": "evil.example"})
        assert evil_host.status_code == 400


async def test_login_redirects_only_within_the_console(ctx):
    async with cs.client(ctx) as http:
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
            answer = await cs.login(http, "van-hoa", target=target)
            assert answer.headers["location"] == "/", target
