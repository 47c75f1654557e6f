"""Emergency request ids are `req-N`, short enough to read over the phone, and a restarted daemon
counts on from its journal instead of handing out an id that named another request
(issue 17, item 9)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from support.communes import thu

from broadcastd.config import load_config
from broadcastd.controller.operations import Health, Operations
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics

if TYPE_CHECKING:
    from pathlib import Path

CONFIG = thu(hamlets=1) + "emergency: {approvals: 2, operators: [an, binh]}\n"
NOW = 1_796_561_739.79  # what the old ids were made of: req-1796561739790


def operations(tmp_path: Path, journal: Journal) -> Operations:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path, probe_media=False).config
    # Opening a request publishes nothing: the dispatcher only stands in for the numbering the
    # daemon used to take from it (clock milliseconds).
    dispatcher = SimpleNamespace(next_adhoc_number=lambda: int(NOW * 1000))
    return Operations(
        config,
        dispatcher=cast("Any", dispatcher),
        journal=journal,
        registry=cast("Any", None),
        controls=cast("Any", None),
        renderer=cast("Any", None),
        metrics=Metrics(),
        clock=lambda: NOW,
        health=lambda: Health(connected=True, ready=True),
    )


async def flood(ops: Operations, operator: str) -> str:
    reply = await ops.handle(
        {"cmd": "announce", "text": "Lũ quét", "priority": "emergency", "operator": operator}
    )
    assert reply["playlists"] == []  # nothing is published before a second operator approves
    return str(reply["request"])


async def test_request_ids_are_short_and_count_on_across_a_restart(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, clock=lambda: NOW)
    try:
        ops = operations(tmp_path, journal)
        assert [await flood(ops, "an"), await flood(ops, "binh")] == ["req-1", "req-2"]
    finally:
        journal.close()
    journal = Journal.open(path, clock=lambda: NOW)  # the daemon restarts: pending ones are gone
    try:
        ops = operations(tmp_path, journal)
        assert ops.approvals.pending() == []
        assert await flood(ops, "an") == "req-3"
    finally:
        journal.close()


async def test_ids_journaled_as_clock_milliseconds_do_not_inflate_the_count(tmp_path):
    journal = Journal.open(tmp_path / "journal.sqlite3", clock=lambda: NOW)
    try:
        journal.record_event("request", '{"id": "req-1796561739790", "operator": "an"}')
        await journal.flush()
        assert await flood(operations(tmp_path, journal), "binh") == "req-1"
    finally:
        journal.close()
