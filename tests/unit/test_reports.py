"""Reports and `broadcastd report` / `broadcastd nodes` over a journal with known acks."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import textwrap
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from support.envelopes import journaled_playlist

from broadcastd import cli, protocol
from broadcastd.journal.store import Journal
from broadcastd.models import Ack, AckStatus, Transition

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_800_000_000.0


def _config(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "state"
    state.mkdir()
    cfg = tmp_path / "commune.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        commune: {{id: sm, name: "Xã Sảng Mộc"}}
        signing: {{private_key_file: {tmp_path}/key}}
        state_dir: {state}
        slots: {{noon: {{at: "11:30"}}, afternoon: {{at: "17:00"}}}}
        tts: {{engines: [espeak]}}
        hamlets:
          - id: ban-a
            name: A
            households: 100
            nodes:
              - {{id: a1, households: 50}}
              - {{id: a2, households: 35}}
              - {{id: a3, households: 15}}
          - id: ban-b
            name: B
            households: 40
            nodes: [{{id: b1, households: 30}}, {{id: b2, households: 10}}]
        announcements:
          - {{id: vaccine, title: Vaccine, category: health, text: {{vi: "Tiêm"}}, slots: [noon]}}
          - {{id: rice, title: Rice, category: farming, text: {{vi: "Lúa"}}, slots: [noon]}}
        """)
    )
    return cfg, state / "journal.sqlite3"


def env(
    pid: str, hamlet: str, *, slot: str = "noon", status: str = "live", priority: str = "normal"
) -> protocol.Signed[protocol.Playlist]:
    items = [
        protocol.PlaylistItem("ab" * 32, 10, 1, 3000, "intro", "zxx", "intro"),
        protocol.PlaylistItem("cd" * 32, 10, 1, 90000, "Vaccine", "vi", "vaccine"),
        protocol.PlaylistItem("ef" * 32, 10, 1, 60000, "Rice", "vi", "rice"),
    ]
    return journaled_playlist(
        pid,
        hamlet,
        play_at=int(T0),
        expires_at=int(T0) + 1200,
        items=items,
        slot=slot,
        status=status,
        priority=priority,
        issued_at=int(T0),
    )


async def _fill(path: Path) -> None:
    j = Journal.open(path, clock=lambda: T0)
    await j.record_dispatch(env("20270115-noon-ban-a-1", "ban-a"))
    await j.record_dispatch(env("20270115-noon-ban-b-1", "ban-b"))
    await j.record_dispatch(env("20270115-noon-ban-b-x", "ban-b", status="exercise"))
    acks: list[tuple[str, AckStatus]] = [
        ("a1", "ready"),
        ("a1", "played"),
        ("a2", "ready"),
        ("a2", "played"),
        ("a3", "failed"),
    ]
    for node, status in acks:
        j.record_ack(Ack(node, "20270115-noon-ban-a-1", status, int(T0)), "ban-a")
    j.record_ack(Ack("b1", "20270115-noon-ban-b-1", "ready", int(T0)), "ban-b")
    j.record_ack(Ack("b1", "20270115-noon-ban-b-1", "rejected", int(T0), "bad sig"), "ban-b")
    j.record_ack(Ack("b2", "20270115-noon-ban-b-x", "played", int(T0)), "ban-b")
    j.record_transition(Transition("a3", "ban-a", "online", "offline", "silent 90s", T0 + 5))
    j.record_transition(Transition("a1", "ban-a", "unknown", "online", "heartbeat", T0))
    await j.flush()
    j.close()


@pytest.fixture(autouse=True)
def day_after(monkeypatch):
    """The report is read the day after: every slot's window has closed (none is pending)."""
    monkeypatch.setattr("broadcastd.cli.report.time", SimpleNamespace(time=lambda: T0 + 86400))


@pytest.fixture
async def commune(tmp_path):
    cfg, path = _config(tmp_path)
    await _fill(path)
    return cfg


def test_report_json_counts_households_and_the_target(commune, capsys):
    assert cli.run(["report", "--date", "2027-01-15", "--json", "-c", str(commune)]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {(r["hamlet"], r["status"]): r for r in data["rows"]}
    a = rows[("ban-a", "live")]
    assert (a["nodes"], a["ready"], a["played"], a["failed"], a["offline"]) == (3, 2, 2, 1, 0)
    assert (a["households_reached"], a["households"], a["percent"], a["target_met"]) == (
        85,
        100,
        85.0,
        True,
    )
    b = rows[("ban-b", "live")]
    assert (b["ready"], b["played"], b["failed"], b["offline"], b["households_reached"]) == (
        1,
        0,
        1,
        1,
        0,
    )
    assert b["target_met"] is False
    x = rows[("ban-b", "exercise")]
    assert (x["played"], x["households_reached"], x["percent"]) == (1, 10, 25.0)
    # minutes: only playlists someone played, chimes left out, exercises apart
    assert data["minutes"] == {
        "live": {"health": 1.5, "farming": 1.0},
        "exercise": {"health": 1.5, "farming": 1.0},
    }


def test_report_csv_and_table(commune, capsys):
    assert cli.run(["report", "--date", "2027-01-15", "--csv", "-c", str(commune)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["hamlet"], r["status"], r["households_reached"], r["target_met"]) for r in rows] == [
        ("ban-a", "live", "85", "True"),
        ("ban-b", "exercise", "10", "False"),
        ("ban-b", "live", "0", "False"),
    ]
    assert cli.run(["report", "--date", "2027-01-15", "-c", str(commune)]) == 0
    out = capsys.readouterr().out
    assert "85/100" in out
    assert "✓" in out
    assert "✗" in out
    assert "minutes aired (live): farming 1.0, health 1.5" in out


def test_report_month_and_empty_day(commune, capsys):
    assert cli.run(["report", "--month", "2027-01", "--json", "-c", str(commune)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["from"], data["to"], len(data["rows"])) == ("2027-01-01", "2027-01-31", 3)
    assert cli.run(["report", "--date", "2027-02-01", "-c", str(commune)]) == 0
    assert "no dispatches journaled for 2027-02-01" in capsys.readouterr().out


def test_report_usage_errors(commune, capsys):
    assert cli.run(["report", "--month", "2027-13", "-c", str(commune)]) == 2
    assert "--month must be YYYY-MM, got: '2027-13'" in capsys.readouterr().err


def test_report_without_a_journal_is_a_clear_error(tmp_path, capsys):
    cfg, _ = _config(tmp_path)
    assert cli.run(["report", "-c", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "no journal at" in err
    assert "Traceback" not in err


def test_nodes_reads_last_journaled_state(commune, capsys):
    assert cli.run(["nodes", "--json", "-c", str(commune)]) == 0
    rows = {r["node"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["a3"]["state"] == "offline"
    assert rows["a3"]["cause"] == "silent 90s"
    assert rows["a1"]["state"] == "online"
    assert rows["a1"]["last_ack"]["status"] == "played"
    assert rows["b2"]["state"] == "unknown"
    assert cli.run(["nodes", "--hamlet", "ban-b", "-c", str(commune)]) == 0
    out = capsys.readouterr().out
    assert "b1" in out
    assert "a1" not in out
    assert cli.run(["nodes", "--hamlet", "nowhere", "-c", str(commune)]) == 2


async def test_an_ack_from_another_hamlets_node_counts_for_nothing(tmp_path, capsys):
    """Issue 23 item 3: a journal written before the daemon refused such acks (a stolen node's
    forged `played` for another hamlet) must not report the foreign node or its households."""
    cfg, path = _config(tmp_path)
    await _fill(path)
    j = Journal.open(path, clock=lambda: T0)
    j.record_ack(Ack("a1", "20270115-noon-ban-b-1", "played", int(T0)), "ban-a")
    await j.flush()
    j.close()
    assert cli.run(["report", "--date", "2027-01-15", "--json", "-c", str(cfg)]) == 0
    rows = {(r["hamlet"], r["status"]): r for r in json.loads(capsys.readouterr().out)["rows"]}
    b = rows[("ban-b", "live")]
    assert (b["nodes"], b["played"], b["households_reached"]) == (2, 0, 0)


HOSTILE = [
    "x [/bold]",
    "\x1b[2J\x1b[H[green]all speakers OK[/green]",
    "b1\nforged line",
    "\u202eevil",  # a bidi override turns the rest of the line around
]


async def test_nodes_and_report_render_any_journaled_value_as_inert_text(tmp_path, capsys):
    """Issue 23 item 4: an id, a cause or a reason in the journal (from the wire, or from a
    journal older than the daemon's checks) never acts as markup or reaches the terminal raw."""
    cfg, path = _config(tmp_path)
    await _fill(path)
    j = Journal.open(path, clock=lambda: T0)
    for n, text in enumerate(HOSTILE):
        j.record_ack(Ack("b1", text, "played", int(T0) + n), "ban-b")
        j.record_transition(Transition("b2", "ban-b", "online", "offline", text, T0 + 10 + n))
        await j.record_dispatch(env(f"20270115-noon-x{n}", f"{text} [red]ban-z"))
        j.record_skip(dt.date(2027, 1, 15), "noon", "ban-a", text)
    await j.flush()
    j.close()
    assert cli.run(["nodes", "-c", str(cfg)]) == 0
    assert cli.run(["report", "--date", "2027-01-15", "-c", str(cfg)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "Traceback" not in captured.err
    for unprintable in ("\x1b", "\u202e", "b1\nforged"):
        assert unprintable not in out
    assert "[/bold]" in out  # shown as the text it is
    assert "[green]all speakers OK[/green]" in out
    assert "[red]ban-z" in out


async def test_nodes_shows_who_confirmed_the_new_signing_key(tmp_path, capsys):
    cfg, path = _config(tmp_path)
    await _fill(path)
    assert cli.run(["nodes", "--json", "-c", str(cfg)]) == 0
    assert {r["key_rotation"] for r in json.loads(capsys.readouterr().out)} == {None}
    j = Journal.open(path, clock=lambda: T0)
    detail = {"id": "keys-1", "old_key": "aa" * 8, "new_key": "bb" * 8, "operator": "an"}
    j.record_event("key_rotation", json.dumps(detail))
    j.record_ack(Ack("a1", "keys-1", "received", int(T0), "key " + "bb" * 8), "ban-a")
    j.record_ack(Ack("a2", "keys-1", "rejected", int(T0), "superseded"), "ban-a")
    await j.flush()
    j.close()
    assert cli.run(["nodes", "--json", "-c", str(cfg)]) == 0
    rows = {r["node"]: r["key_rotation"] for r in json.loads(capsys.readouterr().out)}
    assert rows["a1"] == {"id": "keys-1", "new_key": "bb" * 8, "status": "confirmed"}
    assert rows["a2"]["status"] == "refused: superseded"
    assert rows["b1"]["status"] == "pending"
    assert cli.run(["nodes", "--hamlet", "ban-a", "-c", str(cfg)]) == 0
    assert f"{'bb' * 8}: confirmed" in capsys.readouterr().out
