"""Tổng quan's cards and alerts as pure functions of the plan, the live picture and the journal:
what raises an alert, what does not."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
from support import console as cs
from support import history
from support.clock import FakeClock
from support.communes import thu

from broadcastd.config import load_config
from broadcastd.console import accounts
from broadcastd.console.live import Live, hamlets_from, rotation_of
from broadcastd.console.overview import KEY_SOON_S, OFFLINE_ALERT_S, overview
from broadcastd.transport import pki

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.config import LoadedConfig

TZ = dt.timezone(dt.timedelta(hours=7))
NOON = dt.datetime(2027, 1, 20, 11, 30, tzinfo=TZ)
ISSUED = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)  # when `broadcastd tls init` ran
TLS = "broker: {mode: embedded, listen: '127.0.0.1:1883', public: {host: localhost, port: 8883}}\n"


@pytest.fixture
def loaded(tmp_path) -> LoadedConfig:
    text = thu(hamlets=2, slots='noon: {at: "11:30"}').replace(
        "tts: {engines: [espeak]}", "tts: {engines: [gtts, espeak]}"
    )
    text = text.replace(
        "  - {id: ban-a, name: Bản A, households: 10}",
        "  - {id: ban-a, name: Bản A, households: 10, nodes: [{id: a1, households: 10}]}",
    )
    text += (
        "announcements:\n"
        "  - {id: tin, title: Tin, text: {vi: Xin chào}, slots: [noon], hamlets: [ban-a]}\n"
    )
    path = tmp_path / "thu.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def live(loaded: LoadedConfig, *, state: str = "online", since: float = 0.0, **extra: Any) -> Live:
    nodes = [{"node": "a1", "hamlet": "ban-a", "households": 10, "state": state, "since": since}]
    fields: dict[str, Any] = {
        "daemon": True,
        "reason": "",
        "connected": True,
        "hamlets": tuple(hamlets_from(loaded.config, nodes)),
        "nodes": tuple(nodes),
        "taken_at": 0.0,
    }
    return Live(**(fields | extra))


def kinds(loaded: LoadedConfig, picture: Live, now: float) -> list[str]:
    return [a.kind for a in overview(loaded, picture, None, now)[1]]


def test_a_healthy_commune_long_before_air_has_no_alert(loaded):
    now = (NOON - dt.timedelta(hours=3)).timestamp()
    cards, alerts = overview(loaded, live(loaded), None, now)
    assert alerts == []
    assert [(c.id, c.online, c.total) for c in cards] == [("ban-a", 1, 1), ("ban-b", 0, 0)]
    nxt = cards[0].next
    assert nxt is not None
    assert (nxt.slot, nxt.state, nxt.items) == ("noon", "waiting", 1)


def test_daemon_broker_and_speaker_alerts(loaded):
    now = (NOON - dt.timedelta(hours=3)).timestamp()
    assert kinds(loaded, live(loaded, daemon=False, reason="not running"), now) == ["daemon_down"]
    assert kinds(loaded, live(loaded, connected=False), now) == ["broker_down"]
    recently = live(loaded, state="offline", since=now - 3600)
    assert kinds(loaded, recently, now) == []
    for_days = live(loaded, state="offline", since=now - 2 * OFFLINE_ALERT_S - 60)
    alert = overview(loaded, for_days, None, now)[1][0]
    assert (alert.kind, alert.subject, alert.params["days"]) == ("offline_day", "a1", 2)


def test_a_speaker_heard_lately_on_a_low_battery_is_an_alert(loaded):
    now = (NOON - dt.timedelta(hours=3)).timestamp()

    def battery(state: str = "online", **reading: Any) -> list[tuple[str, str, int, str]]:
        node = {"node": "a1", "hamlet": "ban-a", "households": 10, "state": state}
        picture = live(loaded, nodes=(node | {"telemetry": reading},))
        return [
            (a.level, a.subject, a.params["percent"], a.params["hamlet"])
            for a in overview(loaded, picture, None, now)[1]
            if a.kind == "low_battery"
        ]

    assert battery(mains=False, battery_pct=20.4) == [("warning", "a1", 20, "Bản A")]
    assert battery(mains=False, battery_pct=8.0) == [("danger", "a1", 8, "Bản A")]
    assert battery(mains=False, battery_pct=60.0) == []
    assert battery(mains=True, battery_pct=5.0) == [], "charging on mains"
    assert battery(battery_pct=5.0) == [], "no word of the power: no guess"
    assert battery("offline", mains=False, battery_pct=5.0) == [], "an old reading"


def test_speakers_without_the_new_key_are_an_alert_near_and_after_its_activation(loaded):
    activate, retire = 1_800_000_000.0, 1_800_000_000.0 + 7 * 86400
    rotation = rotation_of(
        {
            "id": "keys-1",
            "new_key": "fedcba9876543210",
            "activate_at": activate,
            "retire_at": retire,
        }
    )

    def keys(now: float, status: str = "pending") -> list[tuple[str, str, str, int]]:
        node = {"node": "a1", "hamlet": "ban-a", "households": 10, "state": "online"}
        said = {"id": "keys-1", "new_key": "fedcba9876543210", "status": status}
        picture = live(loaded, nodes=(node | {"key_rotation": said},), rotation=rotation)
        return [
            (a.level, a.kind, a.subject, a.params["count"])
            for a in overview(loaded, picture, None, now)[1]
            if a.kind.startswith("key_")
        ]

    assert keys(activate - KEY_SOON_S - 1) == [], "speakers have time to hear it"
    soon = [("warning", "key_unconfirmed", "fedcba9876543210", 1)]
    assert keys(activate - 60) == soon
    assert keys(activate + 60) == [("danger", "key_refusing", "fedcba9876543210", 1)]
    assert keys(activate + 60, "refused: bad_signature") == keys(activate + 60)
    assert keys(activate + 60, "confirmed") == []
    assert keys(retire) == [], "the rotation is over; the speakers page still says who"
    assert kinds(loaded, live(loaded), activate) == [], "no rotation, no alert"


def test_a_slot_not_on_the_speakers_ten_minutes_before_air(loaded):
    soon = (NOON - dt.timedelta(minutes=8)).timestamp()
    alerts = overview(loaded, live(loaded), None, soon)[1]
    assert [(a.kind, a.subject, a.params["minutes"]) for a in alerts] == [("not_ready", "Bản A", 8)]
    # a hamlet with nothing to play is never "not ready"
    assert all(a.subject != "Bản B" for a in alerts)


def test_tts_falling_back_is_an_alert_only_when_the_fallback_speaks(loaded):
    now = (NOON - dt.timedelta(hours=3)).timestamp()
    failing = {"gtts": {"timeout": 3, "ok": 1}, "espeak": {"ok": 3}}
    alert = overview(loaded, live(loaded, tts=failing), None, now)[1][0]
    assert (alert.kind, alert.params["failures"], alert.params["fallback"]) == (
        "tts_fallback",
        3,
        "espeak",
    )
    assert kinds(loaded, live(loaded, tts={"gtts": {"ok": 9}}), now) == []
    assert kinds(loaded, live(loaded, tts={"gtts": {"failed": 2}}), now) == []


async def test_the_last_slot_below_target_is_an_alert(loaded, tmp_path):
    config = loaded.config
    config.state_dir.mkdir(parents=True)
    journal = await history.fill(
        config, config.state_dir / "journal.sqlite3", first=NOON.date(), days=1, played=0.0
    )
    try:
        after = (NOON + dt.timedelta(hours=1)).timestamp()
        cards, alerts = overview(loaded, live(loaded), journal, after)
    finally:
        journal.close()
    last = cards[0].last
    assert last is not None
    assert (last.slot, last.target_met, last.households) == ("noon", False, 10)
    # the journal's playlists reached nobody in either hamlet
    assert [(a.kind, a.subject) for a in alerts] == [
        ("below_target", "Bản A"),
        ("below_target", "Bản B"),
    ]


def with_tls(loaded: LoadedConfig) -> LoadedConfig:
    """The same commune with the speakers' TLS listener, its CA and certificate made ISSUED."""
    path: Path = loaded.files[0]
    path.write_text(path.read_text(encoding="utf-8") + TLS, encoding="utf-8")
    tls = load_config(path)
    pki.init(tls.config, now=ISSUED)
    return tls


def test_a_certificate_near_its_end_or_past_it_is_an_alert(loaded):
    tls = with_tls(loaded)

    def certificates(days: int) -> list[tuple[str, str, int, bool]]:
        now = (ISSUED + dt.timedelta(days=days, hours=1)).timestamp()
        return [
            (a.level, a.subject, a.params["days"], a.params["expired"])
            for a in overview(tls, live(tls), None, now)[1]
            if a.kind == "cert_expiry"
        ]

    assert certificates(300) == []
    # the server certificate lasts pki.SERVER_DAYS (397): `check` warns a month ahead, so does this
    assert certificates(pki.SERVER_DAYS - 20) == [("warning", "server", 19, False)]
    assert certificates(pki.SERVER_DAYS - 3) == [("danger", "server", 2, False)]
    assert certificates(pki.SERVER_DAYS + 1) == [("danger", "server", 0, True)]
    assert certificates(pki.CA_DAYS - 10) == [
        ("warning", "ca", 9, False),
        ("danger", "server", 0, True),
    ]
    assert kinds(loaded, live(loaded), ISSUED.timestamp() + 4000 * 86400) == [], "no TLS, no alert"


async def test_the_overview_says_which_certificate_ends_when_in_both_languages(loaded, monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", cs.QUICK_HASHER)
    tls = with_tls(loaded)
    clock = FakeClock((ISSUED + dt.timedelta(days=pki.SERVER_DAYS - 20)).timestamp())
    ctx = cs.build(tls.files[0], clock=clock)
    cs.add_operator(ctx, "van-hoa")
    try:
        async with cs.client(ctx) as http:
            await cs.login(http, "van-hoa")
            page = (await http.get("/")).text
            assert 'data-alert="cert_expiry"' in page
            assert "Chứng chỉ TLS của máy chủ tin nhắn hết hạn sau 20 ngày (2028-02-02)" in page
            token = await cs.csrf(http)
            await http.post("/lang", data={"lang": "en", "csrf": token, "next": "/"})
            english = (await http.get("/")).text
            assert "TLS certificate expires in 20 days (2028-02-02): run" in english
    finally:
        ctx.close()
