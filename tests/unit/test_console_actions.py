"""Acting from the console, in process against a stand-in daemon on the real control socket:
every action route refuses a viewer, a missing CSRF token and another origin; an announcement
shows what the engine will read and who will hear it before it is sent, as the logged-in
operator; nothing is sent without its confirmation page, nor twice."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import subprocess
from typing import TYPE_CHECKING

import pytest
from fastapi.routing import APIRoute
from support import console as cs
from support import history
from support.clock import FakeClock
from support.communes import write_sang_moc
from support.fakedaemon import FakeDaemon

from broadcastd.console import accesslog
from broadcastd.console.acting import AUDIO_FORM_LIMIT
from broadcastd.console.app import MAX_BODY, ROUTERS
from broadcastd.console.confirm import CONFIRM_TTL_S
from broadcastd.console.drafts import MAX_AUDIO_CHARS, MAX_RECORDING_BYTES
from broadcastd.controller import requests
from broadcastd.journal.store import Journal

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from broadcastd.console import Console

EMERGENCY = (
    "emergency: {approvals: 2, operators: [chu-tich, pho-chu-tich, can-bo],"
    ' correction: "Thông báo vừa rồi là nhầm lẫn."}\n'
)
# Routes that change nothing in the daemon: a session's own business, or before login.
NOT_ACTIONS = {"/login", "/logout", "/lang", "/account/sessions/end"}
SAMPLE = {"rid": "req-1"}


pytestmark = pytest.mark.usefixtures("quick_hashes")  # cheap argon2 (conftest.py)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
async def ctx(tmp_path, clock) -> AsyncIterator[Console]:
    path = write_sang_moc(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + EMERGENCY, encoding="utf-8")
    console = cs.build(path, clock=clock)
    cs.add_operator(console, "van-hoa", "viewer")
    cs.add_operator(console, "can-bo", "operator")
    cs.add_operator(console, "chu-tich", "approver")
    cs.add_operator(console, "pho-chu-tich", "approver")
    yield console
    console.close()


@pytest.fixture
async def daemon(ctx) -> AsyncIterator[FakeDaemon]:
    async with FakeDaemon(ctx.loaded.config).serving() as fake:
        yield fake


def action_routes() -> list[str]:
    found = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            if "POST" in (route.methods or ()) and route.path not in NOT_ACTIONS:
                found.append(route.path.format(**SAMPLE))
    return found


async def test_every_action_route_refuses_a_viewer_no_csrf_and_another_origin(ctx, daemon):
    routes = action_routes()
    assert len(routes) >= 9, routes
    async with cs.client(ctx) as viewer, cs.client(ctx) as chair:
        await cs.login(viewer, "van-hoa")
        await cs.login(chair, "chu-tich")
        viewer_csrf, chair_csrf = await cs.csrf(viewer), await cs.csrf(chair)
        for path in routes:
            data = {"text": "Họp thôn", "hamlet": "all", "level": "50", "id": "announce-1"}
            as_viewer = await viewer.post(path, data={**data, "csrf": viewer_csrf})
            assert as_viewer.status_code == 403, path
            assert (await chair.post(path, data=data)).status_code == 403, path
            hostile = await chair.post(
                path, data={**data, "csrf": chair_csrf}, headers={"Origin": "http://evil.example"}
            )
            assert hostile.status_code == 403, path
        for path in ("/announce", "/stop?hamlet=all", "/volume", "/cancel?id=announce-1"):
            assert (await viewer.get(path)).status_code == 403, path
    assert daemon.asked == [], "nothing reached the daemon"
    refusals = [e.detail for e in accesslog.entries(ctx.store, limit=200, kind="refused")]
    assert sum("role viewer may not" in r for r in refusals) >= len(routes)
    assert sum("CSRF" in r for r in refusals) == 2 * len(routes)


async def test_an_announcement_shows_what_will_be_read_and_who_hears_it_then_goes_once(ctx, daemon):
    async with cs.client(ctx) as http:
        await cs.login(http, "can-bo")
        form = await http.get("/announce")
        assert form.status_code == 200
        assert 'value="emergency"' not in form.text, "an operator is not offered emergencies"
        review = await http.post(
            "/announce/review",
            data={
                "csrf": await cs.csrf(http),
                "text": "UBND xã họp lúc 7h30 ngày 15/12, <b>mời</b> 2 hộ.",
                "target": "list",
                "hamlet": ["na-lay"],
                "priority": "priority",
                "when": "now",
            },
        )
        assert review.status_code == 200, review.text
        page = review.text
        assert "ủy ban nhân dân xã họp lúc bảy giờ ba mươi phút ngày mười lăm" in page
        assert "&lt;b&gt;mời&lt;/b&gt;" in page, "the text is shown as text"
        assert 'data-hamlet-reach="na-lay"' in page
        assert 'data-hamlet-reach="ban-chuong"' not in page
        assert '<th class="num" id="households-total">40</th>' in page
        fields = cs.hidden(page)
        assert fields["hamlet"] == "na-lay"
        sent = await http.post("/announce", data=fields)
        assert sent.status_code == 200, sent.text
        assert 'data-outcome="ok"' in sent.text
        again = await http.post("/announce", data=fields)  # a double tap, a reload
        assert again.status_code == 409
        assert 'data-outcome="spent"' in again.text
    assert daemon.asked == [
        {
            "cmd": "announce",
            "text": "UBND xã họp lúc 7h30 ngày 15/12, <b>mời</b> 2 hộ.",
            "lang": "vi",
            "hamlets": "na-lay",
            "priority": "priority",
            "now": True,
            "exercise": False,
            "operator": "can-bo",
            "via": "console",
        }
    ]
    actions = accesslog.entries(ctx.store, limit=10, kind="action")
    assert [(a.operator, a.detail[:30]) for a in actions] == [
        ("can-bo", "announce priority to na-lay: '")
    ]
    assert "ok id announce-1" in actions[0].detail


async def tone(path: Path, seconds: float) -> bytes:
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
            f"sine=frequency=440:duration={seconds}", "-ac", "1", "-ar", "8000",
            "-c:a", "libmp3lame", "-b:a", "8k", str(path)]  # fmt: skip
    await asyncio.to_thread(subprocess.run, argv, check=True)
    return await asyncio.to_thread(path.read_bytes)


async def test_a_recording_goes_with_the_announcement_within_the_daemons_limits(
    ctx, daemon, tmp_path
):
    assert MAX_RECORDING_BYTES == requests.MAX_RECORDING_BYTES, "the daemon's limit"
    audio = await tone(tmp_path / "short.mp3", 2)
    too_long = await tone(tmp_path / "long.mp3", 301)  # audio.max_recording: 5 minutes
    form = {
        "text": "",
        "audio": base64.urlsafe_b64encode(audio).decode(),
        "audio_lang": "vi",
        "target": "list",
        "hamlet": ["na-lay"],
        "priority": "normal",
        "when": "now",
    }
    async with cs.client(ctx) as http:
        await cs.login(http, "can-bo")
        page = await http.get("/announce")
        assert "chưa dùng được" not in page.text
        assert 'name="audio"' in page.text
        review = await http.post("/announce/review", data={**form, "csrf": await cs.csrf(http)})
        assert review.status_code == 200, review.text
        assert 'id="recording-review"' in review.text
        sent = await http.post("/announce", data=cs.hidden(review.text))
        assert 'data-outcome="ok"' in sent.text
        (asked,) = daemon.asked
        assert asked["audio"] == {"vi": base64.b64encode(audio).decode()}
        assert (asked["operator"], asked["text"]) == ("can-bo", "")

        csrf = await cs.csrf(http)
        too_big = {**form, "audio": "A" * (MAX_AUDIO_CHARS + 4), "csrf": csrf}
        refused = await http.post("/announce/review", data=too_big)
        assert refused.status_code == 400
        assert "MiB" in refused.text
        beyond = {**form, "audio": "A" * AUDIO_FORM_LIMIT, "csrf": csrf}
        assert (await http.post("/announce/review", data=beyond)).status_code == 413
        other = {"hamlet": "na-lay", "say": "A" * MAX_BODY, "csrf": csrf}
        assert (await http.post("/stop", data=other)).status_code == 413, "only Phát ngay"
        no_lang = {**form, "audio_lang": "fr", "csrf": csrf}
        assert (await http.post("/announce/review", data=no_lang)).status_code == 400
        long = {**form, "audio": base64.urlsafe_b64encode(too_long).decode(), "csrf": csrf}
        refused = await http.post("/announce/review", data=long)
        assert refused.status_code == 400
        assert "300" in refused.text
        text = base64.urlsafe_b64encode(b"#EXTM3U\nhttp://example.invalid/x\n").decode()
        refused = await http.post("/announce/review", data={**form, "audio": text, "csrf": csrf})
        assert refused.status_code == 400
    assert len(daemon.asked) == 1


async def test_nothing_is_sent_without_its_own_fresh_confirmation(ctx, daemon, clock):
    async with cs.client(ctx) as http:
        await cs.login(http, "can-bo")
        data = {"csrf": await cs.csrf(http), "text": "Họp thôn tối nay", "target": "all"}
        skipped = await http.post("/announce", data=data)
        assert skipped.status_code == 400
        assert 'data-outcome="missing"' in skipped.text
        fields = cs.hidden((await http.post("/announce/review", data=data)).text)
        tampered = await http.post("/announce", data={**fields, "text": "Lũ quét!"})
        assert tampered.status_code == 400
        assert 'data-outcome="mismatch"' in tampered.text
        clock.t += CONFIRM_TTL_S + 1
        late = await http.post("/announce", data=fields)
        assert late.status_code == 409
        assert 'data-outcome="stale"' in late.text
        # another session's confirmation is not this one's (keyed with the session's secret)
        async with cs.client(ctx) as other:
            await cs.login(other, "chu-tich")
            fresh = cs.hidden(
                (
                    await other.post(
                        "/announce/review", data={**data, "csrf": await cs.csrf(other)}
                    )
                ).text
            )
        stolen = await http.post("/announce", data={**fresh, "csrf": fields["csrf"]})
        assert stolen.status_code == 400
    assert daemon.asked == []
    refused = [e.detail for e in accesslog.entries(ctx.store, limit=20, kind="refused")]
    assert sum("confirmation" in r for r in refused) == 4


async def test_an_emergency_needs_an_approver_and_a_short_text_under_two_person_rule(ctx, daemon):
    async with cs.client(ctx) as op, cs.client(ctx) as chair:
        await cs.login(op, "can-bo")
        await cs.login(chair, "chu-tich")
        flood = {"text": "Lũ quét, sơ tán ngay!", "target": "all", "priority": "emergency"}
        refused = await op.post("/announce/review", data={**flood, "csrf": await cs.csrf(op)})
        assert refused.status_code == 403
        assert 'value="emergency"' in (await chair.get("/announce")).text
        long = await chair.post(
            "/announce/review",
            data={**flood, "text": "Lũ " * 100, "csrf": await cs.csrf(chair)},
        )
        assert long.status_code == 400
        assert "tối đa 200 ký tự" in long.text
        review = await chair.post(
            "/announce/review", data={**flood, "csrf": await cs.csrf(chair), "when": "slot"}
        )
        assert 'id="two-person"' in review.text
        assert cs.hidden(review.text)["when"] == "now", "an emergency never waits for a slot"
        drill = await chair.post(
            "/announce/review",
            data={**flood, "exercise": "1", "csrf": await cs.csrf(chair)},
        )
        assert drill.status_code == 400
    assert daemon.asked == []


def journal_request(ctx: Console, clock: FakeClock, rid: str, operator: str, text: str) -> None:
    """The daemon's journal entry for an emergency request, as it writes it before answering."""
    detail = {"id": rid, "hamlets": ["ban-chuong"], "text": text, "operator": operator}
    journal = Journal.open(ctx.loaded.config.state_dir / "journal.sqlite3", clock=clock)
    journal.record_event("request", json.dumps(detail | {"unix_user": "x", "via": "console"}))
    journal.close()


async def test_only_a_second_different_approver_may_approve_a_pending_emergency(ctx, daemon, clock):
    journal_request(ctx, clock, "req-1", "chu-tich", "Cháy rừng <script>alert(1)</script>")
    daemon.pending = ["req-1"]
    async with (
        cs.client(ctx) as asker,
        cs.client(ctx) as second,
        cs.client(ctx) as op,
        cs.client(ctx) as viewer,
    ):
        for http, name in ((asker, "chu-tich"), (second, "pho-chu-tich"), (op, "can-bo")):
            await cs.login(http, name)
        await cs.login(viewer, "van-hoa")
        home = (await second.get("/")).text
        assert 'data-request="req-1"' in home
        assert "Cháy rừng &lt;script&gt;" in home
        assert 'data-review="req-1"' in home
        for other in (asker, op, viewer):
            page = (await other.get("/")).text
            assert 'data-request="req-1"' in page, "everyone sees an emergency is pending"
            assert 'data-review="req-1"' not in page
        own = await asker.get("/requests/req-1")
        assert 'id="own"' in own.text
        assert 'id="approve"' not in own.text
        forged = await asker.post("/requests/req-1/approve", data={"csrf": await cs.csrf(asker)})
        assert forged.status_code == 403
        assert 'data-outcome="own"' in forged.text
        for other in (op, viewer):
            refused = await other.post(
                "/requests/req-1/approve", data={"csrf": await cs.csrf(other)}
            )
            assert refused.status_code == 403
        assert daemon.asked == []

        review = (await second.get("/requests/req-1")).text
        assert "Cháy rừng dưới script trên" in review  # what the speakers will read
        assert 'data-hamlet-reach="ban-chuong"' in review
        approve = cs.form_of(review, "/requests/req-1/approve")
        approved = await second.post("/requests/req-1/approve", data=approve)
        assert approved.status_code == 200, approved.text
        assert "pho-chu-tich" in approved.text
        daemon.pending = []  # approved: the daemon lists it no more (nor an expired one)
        gone = await second.post("/requests/req-1/approve", data=approve)
        assert gone.status_code == 409
        assert 'data-outcome="gone"' in gone.text
        assert (await second.get("/requests/req-1")).status_code == 404
    assert daemon.asked == [
        {"cmd": "approve", "id": "req-1", "operator": "pho-chu-tich", "via": "console"}
    ]
    refusals = [e.detail for e in accesslog.entries(ctx.store, limit=20, kind="refused")]
    assert "approve req-1: their own request" in refusals
    assert "approve req-1: not pending" in refusals


async def test_the_asker_may_withdraw_and_the_request_page_knows_no_other_ids(ctx, daemon, clock):
    journal_request(ctx, clock, "req-7", "chu-tich", "Sạt lở đất")
    daemon.pending = ["req-7"]
    async with cs.client(ctx) as asker:
        await cs.login(asker, "chu-tich")
        page = (await asker.get("/requests/req-7")).text
        withdraw = cs.form_of(page, "/requests/req-7/withdraw")
        assert (await asker.post("/requests/req-7/withdraw", data=withdraw)).status_code == 200
        for bad in ("req-0", "req-x", "..%2Fetc", "announce-1"):
            assert (await asker.get(f"/requests/{bad}")).status_code == 404, bad
    assert daemon.asked == [
        {"cmd": "cancel", "id": "req-7", "operator": "chu-tich", "via": "console"}
    ]


async def test_cancel_stop_and_volume_each_go_through_a_confirmation(ctx, daemon, clock):
    config = ctx.loaded.config
    tomorrow = dt.datetime.fromtimestamp(clock(), tz=config.commune.tz) + dt.timedelta(days=1)
    journal = await history.fill(
        config, config.state_dir / "journal.sqlite3", first=tomorrow.date(), days=1
    )
    playlist = journal.dispatches_for(tomorrow.date(), "noon")[0].id
    journal.close()
    async with cs.client(ctx) as http:
        await cs.login(http, "can-bo")
        csrf = await cs.csrf(http)
        schedule = await http.get(f"/schedule?date={tomorrow.date().isoformat()}&days=1")
        assert f'data-cancel="{playlist}"' in schedule.text
        assert (await http.get("/cancel?id=announce-404")).status_code == 404
        assert (await http.get(f"/cancel?id={playlist}")).status_code == 200
        review = await http.post(
            "/cancel/review", data={"csrf": csrf, "id": playlist, "correction": "config"}
        )
        assert 'id="spoken">Thông báo vừa rồi là nhầm lẫn' in review.text
        assert (await http.post("/cancel", data=cs.hidden(review.text))).status_code == 200

        overview = (await http.get("/")).text
        assert 'id="stop-all"' in overview
        assert 'data-stop="na-lay"' in overview
        stop = await http.get("/stop?hamlet=na-lay")
        assert 'data-hamlet-reach="ban-chuong"' not in stop.text
        assert (await http.post("/stop", data=cs.hidden(stop.text))).status_code == 200
        everywhere = await http.get("/stop?hamlet=all")
        assert 'data-hamlet-reach="ban-chuong"' in everywhere.text
        assert 'data-hamlet-reach="na-lay"' in everywhere.text
        assert (await http.get("/stop?hamlet=nowhere")).status_code == 404

        assert 'id="volume-node"' in (await http.get("/speakers/bc-01")).text
        form = await http.get("/volume?node=bc-01")
        assert form.status_code == 200
        fields = {"csrf": csrf, "node": "bc-01", "hamlet": ""}
        loud = await http.post("/volume/review", data={**fields, "level": "150"})
        assert loud.status_code == 400
        review = await http.post("/volume/review", data={**fields, "level": "60"})
        assert (await http.post("/volume", data=cs.hidden(review.text))).status_code == 200
    operator = {"operator": "can-bo", "via": "console"}
    assert daemon.asked == [
        {"cmd": "cancel", "id": playlist, "say": None, "correction": True, **operator},
        {"cmd": "stop", "hamlets": "na-lay", **operator},
        {"cmd": "volume", "level": 60, "hamlets": None, "nodes": "bc-01", **operator},
    ]


async def test_a_refusal_is_shown_as_the_daemon_said_it_and_a_dead_daemon_as_nothing_sent(
    ctx, daemon
):
    async with cs.client(ctx) as http:
        await cs.login(http, "can-bo")
        data = {"csrf": await cs.csrf(http), "text": "Họp thôn", "target": "all"}
        daemon.refusal = "unknown operator 'can-bo' <img src=x>"
        review = await http.post("/announce/review", data=data)
        refused = await http.post("/announce", data=cs.hidden(review.text))
        assert refused.status_code == 409
        assert "unknown operator &#39;can-bo&#39; &lt;img src=x&gt;" in refused.text
    async with cs.client(ctx) as http:
        await cs.login(http, "can-bo")
        data["csrf"] = await cs.csrf(http)
        review = await http.post("/announce/review", data=data)
        (ctx.loaded.config.state_dir / "broadcastd.sock").unlink()  # the daemon is gone
        ctx.live.refresh()
        down = await http.post("/announce", data=cs.hidden(review.text))
        assert down.status_code == 503
        assert 'data-outcome="down"' in down.text
        for path in ("/announce", "/stop?hamlet=all", "/volume", "/volume?node=bc-01"):
            page = await http.get(path)
            assert page.status_code == 200, path
            assert '<div id="daemon-down" class="banner danger">' in page.text, path
