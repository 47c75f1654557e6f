"""The speakers pages and Tổng quan with what the daemon knows besides reachability: each
speaker's telemetry (from the daemon's `nodes` read, or the readings it last saved while it is
stopped) and what it said of the newest signing key (from the journal). Hostile journal and
telemetry text is escaped or dropped; /api/v1/nodes says what `broadcastd nodes --json` says."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from support import console as cs
from support.clock import FakeClock
from support.communes import write_sang_moc
from support.fakedaemon import FakeDaemon

from broadcastd.cli.main import run as broadcastd
from broadcastd.console import accounts
from broadcastd.console.live import Live
from broadcastd.journal.store import Journal
from broadcastd.journal.telemetry import FILE_NAME, public_reading, save_readings
from broadcastd.models import Ack, Transition

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx

    from broadcastd.console import Console

NOW = 1_800_000_000.0
HOSTILE = "<script>alert(1)</script>"
ROTATION_ID = "keys-1799990000"
ROTATION = {
    "id": ROTATION_ID,
    "old_key": "0123456789abcdef",
    "new_key": "fedcba9876543210",
    "issued_at": NOW - 7200,
    "activate_at": NOW - 3600,
    "retire_at": NOW + 6 * 86400,
    "operator": HOSTILE,
}
# What the daemon saved: bc-01 on a low battery; bc-02's telemetry script is broken except for
# its signal; nl-01's entry is not even an object.
READINGS: dict[str, Any] = {
    "bc-01": {
        "hamlet": "ban-chuong",
        "ts": NOW - 30,
        "battery_pct": 18.0,
        "mains": False,
        "temperature_c": 41.5,
        "signal_dbm": -97.0,
    },
    "bc-02": {
        "hamlet": "ban-chuong",
        "ts": NOW - 30,
        "battery_pct": HOSTILE,
        "mains": "yes",
        "temperature_c": 1e9,
        "signal_dbm": -70,
    },
    "nl-01": HOSTILE,
}


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", cs.QUICK_HASHER)


@pytest.fixture
async def ctx(tmp_path) -> AsyncIterator[Console]:
    console = cs.build(write_sang_moc(tmp_path), clock=FakeClock(NOW))
    cs.add_operator(console, "van-hoa")
    yield console
    console.close()


@pytest.fixture
async def http(ctx) -> AsyncIterator[httpx.AsyncClient]:
    async with cs.signed_in(ctx, "van-hoa") as client:
        yield client


async def journal_rotation(ctx: Console, rotation: dict[str, Any] | str = ROTATION) -> None:
    """Every speaker online; a rotation that bc-01 confirmed and nl-01 refused (hostile reason)."""
    config = ctx.loaded.config
    config.state_dir.mkdir(mode=0o700, exist_ok=True)
    journal = Journal.open(config.state_dir / "journal.sqlite3")
    for h in config.hamlets:
        for n in h.nodes:
            journal.record_transition(Transition(n.id, h.id, "unknown", "online", "", NOW - 600))
    journal.record_event(
        "key_rotation", rotation if isinstance(rotation, str) else json.dumps(rotation)
    )
    journal.record_ack(
        Ack("bc-01", ROTATION_ID, "received", int(NOW - 3000), "key x"), "ban-chuong"
    )
    journal.record_ack(Ack("nl-01", ROTATION_ID, "rejected", int(NOW - 3000), HOSTILE), "na-lay")
    await journal.flush()
    journal.close()


def test_only_well_formed_readings_are_shown():
    assert public_reading(READINGS["bc-01"]) == {
        k: v for k, v in READINGS["bc-01"].items() if k != "hamlet"
    }
    assert public_reading(READINGS["bc-02"]) == {"ts": NOW - 30, "signal_dbm": -70}
    assert public_reading(READINGS["nl-01"]) is None
    assert public_reading({"ts": NOW, "battery_pct": float("nan"), "mains": 1}) is None


def test_the_live_stream_speaks_up_when_the_power_or_a_key_changes_not_at_every_reading():
    node = {"node": "bc-01", "state": "online", "telemetry": {"ts": NOW, "mains": True}}

    def picture(**changed: Any) -> str:
        return Live(True, "", True, (), (node | changed,), NOW).fingerprint()

    assert picture(telemetry={"ts": NOW + 30, "mains": True}) == picture()
    assert picture(telemetry={"ts": NOW + 30, "mains": False}) != picture()
    assert picture(key_rotation={"status": "confirmed"}) != picture()


async def test_speakers_show_saved_telemetry_and_key_confirmations_while_the_daemon_is_down(
    http, ctx, capsys
):
    await journal_rotation(ctx)
    save_readings(ctx.loaded.config.state_dir / FILE_NAME, READINGS)

    page = (await http.get("/speakers")).text
    assert "Trạng thái theo lần ghi cuối cùng" in page
    row = {n: page.split(f'<tr data-node="{n}">')[1].split("</tr>")[0] for n in READINGS}
    assert "pin 18% · 42°C" in row["bc-01"]
    assert 'data-key="confirmed">đã xác nhận' in row["bc-01"]
    assert "(-97 dBm)" in row["bc-01"]  # the modem's signal, beside the agent's own
    assert 'data-field="power">-' in row["bc-02"]  # nothing but a signal survived
    assert 'data-key="pending">đang chờ' in row["bc-02"]
    assert 'data-key="refused">từ chối' in row["nl-01"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row["nl-01"]
    assert HOSTILE not in page
    assert 'id="key-rotation"' in page
    assert "fedcba9876543210" in page

    one = (await http.get("/speakers/bc-01")).text
    assert "Nguồn điện" in one
    assert "pin 18% · 42°C" in one
    assert "-97 dBm" in one
    assert 'fedcba9876543210: <span data-field="key"><span class="key key-confirmed"' in one

    secret = cs.token(ctx)
    api = (await http.get("/api/v1/nodes", headers={"Authorization": f"Bearer {secret}"})).json()
    assert broadcastd(["nodes", "-c", str(ctx.loaded.source), "--json"]) == 0
    cli = {r["node"]: r for r in json.loads(capsys.readouterr().out)}
    for n in api["nodes"]:
        assert n["key_rotation"] == cli[n["node"]]["key_rotation"], n["node"]
        shown = {k: v for k, v in (n["telemetry"] or {}).items() if v is not None}
        assert shown == (cli[n["node"]]["telemetry"] or {}), n["node"]
    assert api["nodes"][2]["key_rotation"]["status"] == f"refused: {HOSTILE}"  # JSON: as text
    spec = await http.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {secret}"})
    described = spec.json()["components"]["schemas"]["NodeState"]["properties"]
    assert {"telemetry", "key_rotation"} <= set(described)


async def test_the_overview_warns_of_a_low_battery_and_speakers_without_the_new_key(http, ctx):
    await journal_rotation(ctx)
    save_readings(ctx.loaded.config.state_dir / FILE_NAME, READINGS)
    page = (await http.get("/")).text
    battery = page.split('data-alert="low_battery">')[1].split("</p>")[0]
    assert "Loa bc-01 (Bản Chương) đang chạy bằng pin, còn 18%" in battery
    keys = page.split('data-alert="key_refusing">')[1].split("</p>")[0]
    assert "2 loa chưa xác nhận khóa ký mới (bc-02, nl-01)" in keys


async def test_english_labels(http):
    token = await cs.csrf(http)
    await http.post("/lang", data={"lang": "en", "csrf": token, "next": "/speakers"})
    page = (await http.get("/speakers")).text
    assert "<th>Power</th>" in page
    assert "New key" not in page  # no rotation, no column


async def test_a_broken_rotation_event_shows_no_key_column(http, ctx):
    await journal_rotation(ctx, "{not json")
    page = (await http.get("/speakers")).text
    assert 'id="key-rotation"' not in page
    assert 'data-field="key"' not in page


async def test_a_hostile_rotation_event_is_shown_as_text(http, ctx):
    hostile = ROTATION | {"new_key": HOSTILE, "activate_at": "soon", "retire_at": NOW + 60}
    await journal_rotation(ctx, json.dumps(hostile))
    page = (await http.get("/speakers")).text
    assert "Khóa ký &lt;script&gt;alert(1)&lt;/script&gt; thay cho" in page
    assert "dùng để ký từ -;" in page  # a time that is not one is not shown
    assert HOSTILE not in page
    assert 'data-alert="key_' not in (await http.get("/")).text  # no times, no alert


async def test_telemetry_from_the_running_daemon(http, ctx):
    await journal_rotation(ctx)
    fake = FakeDaemon(ctx.loaded.config, telemetry={"bc-02": {"mains": True, "temperature_c": 30}})
    async with fake.serving():
        page = (await http.get("/speakers")).text
    row = page.split('<tr data-node="bc-02">')[1].split("</tr>")[0]
    assert "điện lưới · 30°C" in row
    assert 'data-key="pending"' in row  # the journal's, beside the daemon's answer
    assert "Trạng thái theo lần ghi cuối cùng" not in page
