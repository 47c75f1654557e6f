"""The audit hash chain: verification, append-only rows, `broadcastd audit verify`."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from broadcastd import cli
from broadcastd.journal import audit
from broadcastd.journal.store import Journal
from broadcastd.models import Ack, Transition

if TYPE_CHECKING:
    from pathlib import Path

NOW = 1_800_000_000.0


def envelope(pid: str) -> dict[str, Any]:
    return {
        "id": pid,
        "hamlet": "ban-a",
        "slot": "noon",
        "play_at": 1_800_000_600,
        "expires_at": 1_800_001_800,
        "priority": "normal",
        "status": "live",
        "seq": 1,
        "items": [],
        "sig": "c2ln",
    }


async def _filled(path: Path) -> None:
    j = Journal.open(path, clock=lambda: NOW)
    await j.record_dispatch(envelope("20270115-noon-ban-a-1"))
    await j.mark_published("20270115-noon-ban-a-1", NOW + 1)
    await j.record_ack(Ack("a1", "20270115-noon-ban-a-1", "played", 5), "ban-a")
    await j.record_ack(Ack("a2", "20270115-noon-ban-a-1", "failed", 6, "no audio"), "ban-a")
    j.add_transition(Transition("a1", "ban-a", "unknown", "online", "heartbeat", NOW))
    await j.record_event("approve", "op=lan")
    await j.flush()
    j.close()


async def test_audit_chain_verifies_and_append_only(tmp_path):
    path = tmp_path / "j.sqlite3"
    await _filled(path)
    assert audit.verify(path) is None
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET content='x' WHERE seq=1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("UPDATE acks SET status='played' WHERE node='a2'", "acks[2]"),
        ("UPDATE dispatches SET published_at=NULL", "dispatches[20270115-noon-ban-a-1]"),
        ("DELETE FROM acks WHERE node='a1'", "acks[1]"),
        ("INSERT INTO events (ts, kind, detail) VALUES (1, 'approve', 'forged')", "events[2]"),
        ("UPDATE transitions SET \"to\"='offline'", "transitions[1]"),
        (
            (
                "DROP TRIGGER audit_no_update; UPDATE audit"
                " SET content=replace(content,'failed','played') WHERE tbl='acks'"
            ),
            "audit chain broken",
        ),
    ],
)
async def test_audit_finds_the_first_altered_row(tmp_path, tamper, expected):
    path = tmp_path / "j.sqlite3"
    await _filled(path)
    conn = sqlite3.connect(path)
    conn.executescript(tamper)
    conn.close()
    finding = audit.verify(path)
    assert finding is not None
    assert expected in str(finding)


def test_audit_command_exit_codes(tmp_path, capsys):
    path = tmp_path / "state"
    path.mkdir()
    asyncio.run(_filled(path / "journal.sqlite3"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        commune: {{id: sm, name: Sang Moc}}
        signing: {{private_key_file: {tmp_path}/key}}
        state_dir: {path}
        slots: {{noon: {{at: "11:30"}}}}
        tts: {{engines: [espeak]}}
        hamlets: [{{id: ban-a, name: A, households: 10, nodes: [{{id: a1, households: 10}}]}}]
        """)
    )
    argv = ["audit", "verify", "-c", str(cfg)]
    assert cli.run(argv) == 0
    assert capsys.readouterr().out.strip() == "ok: 6 audit rows, chain intact"
    conn = sqlite3.connect(path / "journal.sqlite3")
    conn.execute("UPDATE acks SET status='played'")
    conn.commit()
    conn.close()
    assert cli.run(argv) == 1
    out = capsys.readouterr()
    assert "ALTERED" in out.out
    assert "acks[2]" in out.out
    (path / "journal.sqlite3").unlink()
    assert cli.run(argv) == 1
    assert "no journal at" in capsys.readouterr().err


def test_verify_of_a_missing_or_foreign_file_is_an_audit_error(tmp_path):
    with pytest.raises(audit.AuditError, match="no journal"):
        audit.verify(tmp_path / "nope.sqlite3")
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(audit.AuditError, match="not a readable journal"):
        audit.verify(other)


async def test_chain_continues_across_reopen(tmp_path):
    path = tmp_path / "j.sqlite3"
    await _filled(path)
    j = Journal.open(path, clock=lambda: NOW)
    await j.record_event("stop", "all hamlets")
    await j.flush()
    j.close()
    assert audit.verify(path) is None
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert rows == 7
