"""Journal: outbox reads, batching, schema versions, audit chain, and kill -9 at random moments."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from broadcastd import protocol
from broadcastd.errors import JournalError
from broadcastd.journal import audit
from broadcastd.journal.store import SCHEMA_VERSION, Journal
from broadcastd.models import Ack, Transition

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0


def envelope(
    pid: str, hamlet: str = "ban-a", *, play_at: int = 1_800_000_600, seq: int = 1
) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "playlist",
        "commune": "sm",
        "hamlet": hamlet,
        "id": pid,
        "slot": "noon",
        "play_at": play_at,
        "expires_at": play_at + 1200,
        "priority": "normal",
        "issued_at": play_at - 1800,
        "status": "live",
        "seq": seq,
        "items": [
            {
                "sha256": "ab" * 32,
                "bytes": 10,
                "chunks": 1,
                "duration_ms": 60000,
                "title": "Tin",
                "lang": "vi",
                "announcement": "news",
            }
        ],
        "sig": "c2lnbmF0dXJl",
    }


def signed(env: dict[str, Any]) -> protocol.Signed[protocol.Playlist]:
    return protocol.signed_playlist(protocol.encode(env))


@pytest.fixture
async def journal(tmp_path: Path):
    j = Journal.open(tmp_path / "journal.sqlite3", clock=lambda: NOW)
    yield j
    j.close()


async def test_outbox_until_published_then_current_per_hamlet(journal):
    env = envelope("20270115-noon-ban-a-1")
    await journal.record_dispatch(signed(env))
    assert [r.id for r in journal.unpublished(NOW)] == [env["id"]]
    row = journal.dispatch(env["id"])
    assert row is not None
    assert (row.date, row.slot, row.hamlet, row.seq) == ("2027-01-15", "noon", "ban-a", 1)
    assert json.loads(row.envelope) == env, "the signed envelope comes back unchanged"
    assert await journal.mark_published(env["id"], NOW + 1) is True
    assert await journal.mark_published(env["id"], NOW + 2) is False, (
        "only the first publish counts"
    )
    assert journal.unpublished(NOW) == []
    assert journal.dispatch(env["id"]).published_at == NOW + 1
    assert [r.id for r in journal.latest_per_hamlet(NOW)] == [env["id"]]
    assert journal.latest_per_hamlet(env["expires_at"]) == [], (
        "expired playlists are not re-published"
    )


async def test_latest_per_hamlet_prefers_the_newest_and_skips_cancelled(journal):
    await journal.record_dispatch(signed(envelope("20270115-noon-ban-a-1", seq=1)))
    await journal.record_dispatch(signed(envelope("20270115-noon-ban-a-2", seq=2)))
    await journal.record_dispatch(signed(envelope("20270115-noon-ban-b-1", "ban-b", seq=3)))
    await journal.mark_published("20270115-noon-ban-a-1", NOW + 1)
    await journal.mark_published("20270115-noon-ban-a-2", NOW + 2)
    latest = {r.hamlet: r.id for r in journal.latest_per_hamlet(NOW)}
    assert latest == {"ban-a": "20270115-noon-ban-a-2", "ban-b": "20270115-noon-ban-b-1"}
    assert await journal.mark_cancelled("20270115-noon-ban-a-2", NOW + 3)
    latest = {r.hamlet: r.id for r in journal.latest_per_hamlet(NOW)}
    assert latest["ban-a"] == "20270115-noon-ban-a-1"
    assert journal.max_seq() == 3
    rows = journal.dispatches_for(dt.date(2027, 1, 15), "noon")
    assert [r.id[-3:] for r in rows] == ["a-1", "a-2", "b-1"]


async def test_recording_the_same_playlist_twice_keeps_the_first_envelope(journal):
    first = envelope("20270115-noon-ban-a-1")
    await journal.record_dispatch(signed(first))
    await journal.record_dispatch(signed({**first, "issued_at": 5, "sig": "b3RoZXI="}))
    assert json.loads(journal.dispatch(first["id"]).envelope)["sig"] == first["sig"]


async def test_acks_are_batched_and_visible_after_flush(journal):
    for i in range(50):
        journal.record_ack(Ack(f"n{i}", "p1", "played", 100 + i), "ban-a")
    assert journal.acks_for("p1") == [], "not yet committed: writes are batched"
    await journal.flush()
    acks = journal.acks_for("p1")
    assert len(acks) == 50
    assert (acks[0].node, acks[0].hamlet, acks[0].status, acks[0].received_at) == (
        "n0",
        "ban-a",
        "played",
        NOW,
    )
    assert journal.last_acks()["n7"].ts == 107


async def test_writer_task_commits_in_the_background(journal):
    task = asyncio.create_task(journal.run())
    sink = journal.record_transition
    sink(Transition("a1", "ban-a", "unknown", "online", "heartbeat", NOW))
    sink(Transition("a1", "ban-a", "online", "stale", "silent 60s", NOW + 60))
    journal.record_event("issue", "emergency: flood")
    journal.record_reload("error", "bad yaml")
    journal.record_skip(dt.date(2027, 1, 15), "noon", "*", "started after expires_at")
    for _ in range(100):
        if journal.latest_transitions():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await journal.flush()
    assert journal.latest_transitions()["a1"].to == "stale"
    counts = {
        t: journal._query(f"SELECT COUNT(*) FROM {t}")[0][0]  # noqa: S608 - fixed names
        for t in ("events", "reloads", "skips", "transitions")
    }
    assert counts == {"events": 1, "reloads": 1, "skips": 1, "transitions": 2}


async def test_schema_version_and_refusing_a_newer_journal(tmp_path):
    path = tmp_path / "j.sqlite3"
    Journal.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer broadcastd"):
        Journal.open(path)


def test_not_a_journal_is_a_clear_error(tmp_path):
    path = tmp_path / "j.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal.open(path)
    with pytest.raises(JournalError, match="no journal"):
        Journal.open(tmp_path / "missing.sqlite3", readonly=True)


WRITER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from broadcastd.journal.store import Journal
from broadcastd.models import Ack

async def main():
    j = Journal.open(__import__("pathlib").Path({path!r}))
    task = asyncio.create_task(j.run())
    run = sys.argv[1]
    print("ready", flush=True)
    for batch in range(10_000):
        ids = [f"{{run}}-{{batch}}-{{i}}" for i in range(1 + batch % 20)]
        for ack_id in ids:
            j.record_ack(Ack("n1", ack_id, "played", batch), "ban-a")
        await asyncio.sleep(0)
        await j.flush()
        print(" ".join(ids), flush=True)

asyncio.run(main())
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_committed_ack(tmp_path):
    path = tmp_path / "j.sqlite3"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), path=str(path)))
    rng = random.Random(99)
    committed: set[str] = set()
    deadline = time.monotonic() + 60
    for run in range(20):
        proc = subprocess.Popen(
            [sys.executable, str(script), f"r{run}"], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        for line in out.splitlines()[:-1]:  # the last line may be cut mid-write
            committed.update(line.split())
        assert time.monotonic() < deadline, "kill -9 test over its time bound"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r[0] for r in conn.execute("SELECT playlist FROM acks")}
    conn.close()
    assert len(committed) > 100, "the writer must have committed something between kills"
    assert committed <= stored, f"lost: {sorted(committed - stored)[:5]}"
    assert audit.verify(path) is None, "the hash chain survives kill -9"


async def test_close_commits_what_is_still_queued(tmp_path):
    path = tmp_path / "j.sqlite3"
    j = Journal.open(path, clock=lambda: NOW)
    j.record_ack(Ack("a1", "p1", "played", 1), "ban-a")
    j.close()
    again = Journal.open(path, readonly=True)
    assert [a.node for a in again.acks_for("p1")] == ["a1"]
    again.close()
    assert audit.verify(path) is None
