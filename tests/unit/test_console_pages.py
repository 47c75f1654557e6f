"""The console's pages and API over a journal with a few days of history and no daemon: what
they show, that config and journal text is escaped, the downloads are the CLI's report byte for
byte, the languages, and that a dead daemon is said on every page."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
from typing import TYPE_CHECKING

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from fastapi.routing import APIRoute
from support import console as cs
from support import history
from support.clock import FakeClock

from broadcastd.cli.main import run as broadcastd
from broadcastd.console import i18n
from broadcastd.console.app import ROUTERS
from broadcastd.console.schedule import bulletin_clips

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import httpx

    from broadcastd.console import Console

TZ_NOON = dt.datetime(2027, 1, 20, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
FIRST = dt.date(2027, 1, 15)
HOSTILE = "<script>alert(1)</script>"
ACTING = {"/announce", "/cancel", "/stop", "/volume", "/requests/{rid}"}


def write_config(root: Path) -> Path:
    path = root / "commune.yaml"
    path.write_text(
        f"""\
commune: {{id: sang-moc, name: "Xã Sảng Mộc"}}
signing: {{private_key_file: ed25519.key}}
state_dir: state
slots: {{noon: {{at: "11:30"}}, afternoon: {{at: "17:00"}}}}
tts: {{engines: [espeak]}}
hamlets:
  - {{id: ban-chuong, name: "Bản Chương", households: 87,
     nodes: [{{id: bc-01, households: 50}}, {{id: bc-02, households: 37}}]}}
  - {{id: na-lay, name: "Nà Láy <b>", households: 40, nodes: [{{id: nl-01, households: 40}}]}}
announcements:
  - {{id: vaccine, title: "{HOSTILE}", category: health,
     text: {{vi: "Tiêm phòng <i>gia súc</i>"}}, slots: [noon]}}
  - {{id: rice, title: "Sâu cuốn lá", category: agriculture, text: {{vi: "Phòng trừ sâu"}},
     slots: [noon, afternoon]}}
""",
        encoding="utf-8",
    )
    return path


pytestmark = pytest.mark.usefixtures("quick_hashes")  # cheap argon2 (conftest.py)


@pytest.fixture
async def ctx(tmp_path) -> AsyncIterator[Console]:
    path = write_config(tmp_path)
    clock = FakeClock(TZ_NOON.timestamp())
    console = cs.build(path, clock=clock)
    journal = await history.fill(
        console.loaded.config,
        console.loaded.config.state_dir / "journal.sqlite3",
        first=FIRST,
        days=6,
    )
    journal.record_event("refused", '{"operator": "<img src=x onerror=alert(2)>"}')
    await journal.flush()
    journal.close()
    cs.add_operator(console, "van-hoa")
    yield console
    console.close()


@pytest.fixture
async def http(ctx) -> AsyncIterator[httpx.AsyncClient]:
    async with cs.signed_in(ctx, "van-hoa") as client:
        yield client


def page_paths() -> list[str]:
    paths = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            if (
                "GET" in (route.methods or ())
                and not route.path.startswith(("/api/", "/events", "/audio", "/bulletin", "/login"))
                and "." not in route.path
                and route.path not in ACTING  # an operator's (test_console_actions.py)
            ):
                paths.append(route.path.format(node="bc-01"))
    return paths


async def test_every_page_says_the_daemon_is_not_running(http):
    paths = page_paths()
    assert {
        "/",
        "/schedule",
        "/speakers",
        "/speakers/bc-01",
        "/report",
        "/journal",
        "/account",
    } <= set(paths)
    for path in paths:
        page = await http.get(path)
        assert page.status_code == 200, path
        assert '<div id="daemon-down" class="banner danger">' in page.text, path
        assert "Máy chủ phát thanh không chạy" in page.text, path


async def test_config_and_journal_text_is_escaped(http):
    schedule = (await http.get("/schedule?date=2027-01-20&days=1")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in schedule
    assert "Tiêm phòng &lt;i&gt;gia súc&lt;/i&gt;" in schedule
    assert HOSTILE not in schedule
    overview = (await http.get("/")).text
    assert "Nà Láy &lt;b&gt;" in overview
    assert "Nà Láy <b>" not in overview
    journal = (await http.get("/journal")).text
    assert "&lt;img src=x onerror=alert(2)&gt;" in journal
    assert "<img src=x" not in journal


async def test_the_overview_has_every_hamlet_with_its_last_slot(http):
    page = (await http.get("/")).text
    for name in ("Bản Chương", "Nà Láy &lt;b&gt;"):
        assert f">{name}</a></h2>" in page
    assert page.count('class="card"') == 2
    assert "Vừa rồi (buổi trưa 2027-01-20)" in page  # today's noon slot aired at 11:30


async def test_downloads_are_exactly_what_report_prints(http, ctx, capsys):
    config_path = ctx.loaded.source
    for kind in ("json", "csv"):
        assert (
            broadcastd(["report", "-c", str(config_path), "--date", "2027-01-17", f"--{kind}"]) == 0
        )
        printed = capsys.readouterr().out
        download = await http.get(f"/report.{kind}?date=2027-01-17")
        assert download.status_code == 200
        assert download.text == printed, kind
        assert "attachment" in download.headers["content-disposition"]
    rows = json.loads(
        printed if kind == "json" else (await http.get("/report.json?date=2027-01-17")).text
    )["rows"]
    assert len(rows) == 2 * 2  # two slots, two hamlets


async def test_english_is_one_click_away_and_stays(http):
    assert '<html lang="vi">' in (await http.get("/")).text
    token = await cs.csrf(http)
    switched = await http.post("/lang", data={"lang": "en", "csrf": token, "next": "/speakers"})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/speakers"
    page = (await http.get("/speakers")).text
    assert '<html lang="en">' in page
    assert "The broadcast server is not running." in page
    assert ">Speakers</a>" in page
    bad = await http.post("/lang", data={"lang": "fr", "csrf": token})
    assert bad.status_code == 400


async def test_a_speakers_page_charts_thirty_days_of_availability(http):
    page = (await http.get("/speakers/bc-01")).text
    assert page.count("<rect ") == 30
    assert "Mức sẵn sàng 30 ngày qua" in page
    assert (await http.get("/speakers/nobody")).status_code == 404


async def test_the_api_matches_the_pages_and_the_report(http, ctx, capsys):
    secret = cs.token(ctx)
    auth = {"Authorization": f"Bearer {secret}"}
    status = (await http.get("/api/v1/status", headers=auth)).json()
    assert status["daemon"]["running"] is False
    assert status["live"] is False
    assert [(h["id"], h["name"], h["nodes_total"]) for h in status["hamlets"]] == [
        ("ban-chuong", "Bản Chương", 2),
        ("na-lay", "Nà Láy <b>", 1),
    ]
    coverage = (await http.get("/api/v1/coverage?date=2027-01-17", headers=auth)).json()
    assert (
        broadcastd(["report", "-c", str(ctx.loaded.source), "--date", "2027-01-17", "--json"]) == 0
    )
    assert coverage == json.loads(capsys.readouterr().out)
    schedule = (
        await http.get("/api/v1/schedule?date=2027-01-17&hamlet=na-lay", headers=auth)
    ).json()
    assert [(e["slot"], e["playlist"]) for e in schedule] == [
        ("noon", "20270117-noon-na-lay-1"),
        ("afternoon", "20270117-afternoon-na-lay-1"),
    ]
    assert schedule[0]["items"][0]["title"] == HOSTILE  # JSON carries text as text
    spec = (await http.get("/api/v1/openapi.json", headers=auth)).json()
    assert set(spec["paths"]) == {
        f"/api/v1/{p}" for p in ("status", "hamlets", "nodes", "schedule", "coverage")
    }
    assert all(set(ops) == {"get"} for ops in spec["paths"].values()), "read-only"


async def test_clips_are_served_only_if_a_playlist_names_them(http, ctx):
    audio = ctx.audio_root
    audio.mkdir(parents=True)
    named = history._sha("rice", "vi")
    (audio / f"{named}.mp3").write_bytes(b"ID3 fake mp3")
    stray = "1" * 64
    (audio / f"{stray}.mp3").write_bytes(b"ID3 other")
    ok = await http.get(f"/audio/{named}")
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "audio/mpeg"
    assert (await http.get(f"/audio/{stray}")).status_code == 404
    assert (await http.get("/audio/..%2f..%2fconsole.sqlite3")).status_code == 404


def test_every_message_has_a_vietnamese_translation_and_none_is_stale():
    used = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(
            i18n.HERE,
            method_map=[("**.py", "python"), ("templates/**.html", "jinja2")],
            options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
            keywords={"_": None, "gettext": None, "N_": None},
        )
    }
    for lang in i18n.LANGS:
        with i18n.catalog_path(lang).open("rb") as po:
            catalog = read_po(po)
        ids = {m.id for m in catalog if m.id}
        assert used - ids == set(), f"{lang}: messages missing from the catalog"
        assert ids - used == set(), f"{lang}: stale messages in the catalog"
        if lang == "vi":
            assert [m.id for m in catalog if m.id and not m.string] == []


async def test_a_hamlets_whole_bulletin_plays_for_a_dispatched_slot_and_only_signed_in(http, ctx):
    day = dt.date(2027, 1, 17)
    shas = await ctx.journal.read(lambda j, _: bulletin_clips(j, day, "noon", "na-lay"), [])
    assert shas, "the history dispatched this slot"
    ctx.audio_root.mkdir(parents=True)
    for n, sha in enumerate(dict.fromkeys(shas)):
        await asyncio.to_thread(
            subprocess.run,
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
             f"sine=frequency={440 + 110 * n}:duration=0.5", "-ac", "1", "-ar", "44100",
             "-c:a", "libmp3lame", "-b:a", "64k", str(ctx.audio_root / f"{sha}.mp3")],
            check=True,
        )  # fmt: skip
    page = (await http.get("/schedule?date=2027-01-17&hamlet=na-lay")).text
    assert 'src="/bulletin/2027-01-17/noon/na-lay"' in page
    joined = await http.get("/bulletin/2027-01-17/noon/na-lay")
    assert joined.status_code == 200, joined.text
    assert joined.headers["content-type"] == "audio/mpeg"
    assert len(joined.content) > 1000
    assert (await http.get("/bulletin/2026-01-17/noon/na-lay")).status_code == 404
    assert (await http.get("/bulletin/2027-01-17/midnight/na-lay")).status_code == 404
    assert (await http.get("/bulletin/2027-01-17/noon/..%2f..")).status_code == 404
    async with cs.client(ctx) as stranger:
        refused = await stranger.get("/bulletin/2027-01-17/noon/na-lay")
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/login")
