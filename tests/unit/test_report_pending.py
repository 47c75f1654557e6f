"""`broadcastd report` shows a bulletin published ahead of its slot as pending, not as a miss
(✗ 0%), until its window closes (issue 17, item 8)."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from support.envelopes import item, journaled_playlist

from broadcastd import cli
from broadcastd.journal.store import Journal
from broadcastd.models import Ack

if TYPE_CHECKING:
    from pathlib import Path

PLAY_AT = int(
    dt.datetime(2026, 11, 24, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp()
)
EXPIRES_AT = PLAY_AT + 1200


def commune(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(
        'commune: {id: thu, name: "Xã Thử"}\n'
        "signing: {private_key_file: key}\n"
        "state_dir: state\n"
        'slots: {noon: {at: "11:30"}}\n'
        "tts: {engines: [espeak]}\n"
        "hamlets:\n"
        "  - {id: ban-a, name: A, households: 10, nodes: [{id: a1, households: 10}]}\n"
        "  - {id: ban-b, name: B, households: 10, nodes: [{id: b1, households: 10}]}\n",
        encoding="utf-8",
    )
    return path


async def journal_one_slot(path: Path, *, b_played: bool = True) -> None:
    journal = Journal.open(path, clock=lambda: PLAY_AT - 1800.0)
    for hamlet in ("ban-a", "ban-b"):
        await journal.record_dispatch(
            journaled_playlist(
                f"20261124-noon-{hamlet}-1",
                hamlet,
                play_at=PLAY_AT,
                expires_at=EXPIRES_AT,
                items=[item("hop", 5000)],
            )
        )
    journal.record_ack(Ack("a1", "20261124-noon-ban-a-1", "ready", PLAY_AT - 1700), "ban-a")
    if b_played:
        ack = Ack("b1", "20261124-noon-ban-b-1", "played", PLAY_AT + 10)
        journal.record_ack(ack, "ban-b")
    await journal.flush()
    journal.close()


@pytest.fixture
async def config(tmp_path: Path) -> Path:
    path = commune(tmp_path)
    await journal_one_slot(tmp_path / "state" / "journal.sqlite3")
    return path


def at(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    monkeypatch.setattr("broadcastd.cli.report.time", SimpleNamespace(time=lambda: now))


def report(config: Path, *extra: str) -> int:
    return cli.run(["report", "--date", "2026-11-24", "-c", str(config), *extra])


def test_a_slot_that_has_not_aired_is_pending(config, monkeypatch, capsys):
    at(monkeypatch, PLAY_AT - 600)  # published 30 min ahead, 10 min before air
    assert report(config, "--json") == 0
    rows = {r["hamlet"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert (rows["ban-a"]["pending"], rows["ban-a"]["target_met"]) == (True, False)
    assert (rows["ban-b"]["pending"], rows["ban-b"]["target_met"]) == (False, True)
    assert report(config) == 0
    out = capsys.readouterr().out
    assert "✗" not in out
    assert "✓" in out  # ban-b already met the target
    assert (
        "pending 2026-11-24 noon ban-a (live): plays 11:30, 1/1 nodes ready, 0 played, "
        "0/10 households so far"
    ) in out


def test_csv_says_which_rows_are_pending(config, monkeypatch, capsys):
    at(monkeypatch, PLAY_AT - 600)
    assert report(config, "--csv") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(",playlists,play_at,pending")
    assert [line.rsplit(",", 1)[1] for line in lines[1:]] == ["True", "False"]


async def test_a_day_with_only_pending_slots_lists_them(tmp_path, monkeypatch, capsys):
    config = commune(tmp_path)
    await journal_one_slot(tmp_path / "state" / "journal.sqlite3", b_played=False)
    at(monkeypatch, PLAY_AT - 600)
    assert report(config) == 0
    out = capsys.readouterr().out
    assert "no dispatches journaled" not in out
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "pending 2026-11-24 noon ban-a (live)",
        "pending 2026-11-24 noon ban-b (live)",
    ]


def test_once_its_window_closes_a_missed_slot_is_a_miss(config, monkeypatch, capsys):
    at(monkeypatch, EXPIRES_AT)
    assert report(config, "--json") == 0
    rows = {r["hamlet"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["ban-a"]["pending"] is False
    assert report(config) == 0
    out = capsys.readouterr().out
    assert "✗" in out
    assert "pending" not in out
