"""Numbered acks, the node's ack log on disk, signed receipts and the journal's one row per ack."""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broadcastd import protocol
from broadcastd.errors import ProtocolError
from broadcastd.journal.audit import verify
from broadcastd.journal.store import Journal
from broadcastd.models import Ack
from broadcastd.node.ackoutbox import COMPACT_AFTER, FILE, AckLog

KEY = Ed25519PrivateKey.generate()


def ack(n: int, playlist: str = "p-1", status: str = "played") -> bytes:
    return protocol.ack_payload(playlist, status, 1_800_000_000, n=n)


def test_an_ack_stays_on_disk_until_a_receipt_names_it(tmp_path):
    log = AckLog(tmp_path)
    numbers = [log.add(functools.partial(ack, status=s)) for s in ("received", "ready", "played")]
    assert numbers == [1, 2, 3]
    assert log.confirm([2, 7]) == [2]  # 7 was never ours: nothing to forget
    log.sync()
    log.close()
    again = AckLog(tmp_path)  # the agent restarted (or was SIGKILLed: the lines were flushed)
    again.open()
    assert sorted(again.pending) == [1, 3]
    assert protocol.parse_ack(again.pending[3]) == protocol.AckMessage(
        "p-1", "played", 1_800_000_000, "", 3
    )
    assert again.add(ack) == 4  # numbers never repeat
    again.close()


def test_a_torn_last_line_is_dropped_and_compaction_keeps_the_numbering(tmp_path):
    log = AckLog(tmp_path)
    log.add(ack)
    log.close()
    with (tmp_path / FILE).open("a", encoding="utf-8") as fh:
        fh.write('{"n": 2, "ack": "{\\"playl')  # a power cut mid-write
    torn = AckLog(tmp_path)
    torn.open()
    assert list(torn.pending) == [1]
    for _ in range(COMPACT_AFTER):
        torn.confirm([torn.add(ack)])
    torn.confirm([1])
    torn.close()
    lines = (tmp_path / FILE).read_text(encoding="utf-8").splitlines()
    assert lines == [json.dumps({"next": COMPACT_AFTER + 2})]
    fresh = AckLog(tmp_path)
    fresh.open()
    assert fresh.pending == {}
    assert fresh.add(ack) == COMPACT_AFTER + 2
    fresh.close()


def test_only_a_genuine_receipt_for_this_node_confirms_anything():
    public = KEY.public_key()
    good = protocol.receipt_payload("sang-moc", "bc-01", [3, 1, 3], 1_800_000_000, KEY)
    assert json.loads(good)["acks"] == [1, 3]
    assert protocol.verify_receipt(good, public, commune="sang-moc", node="bc-01") == [1, 3]
    with pytest.raises(ProtocolError) as other_node:
        protocol.verify_receipt(good, public, commune="sang-moc", node="bc-02")
    assert other_node.value.reason == "wrong_node"
    forged = protocol.receipt_payload("sang-moc", "bc-01", [1], 0, Ed25519PrivateKey.generate())
    with pytest.raises(ProtocolError) as bad:
        protocol.verify_receipt(forged, public, commune="sang-moc", node="bc-01")
    assert bad.value.reason == "bad_signature"
    body = json.loads(good)
    body["acks"] = [1, 2, 3]  # widened after signing
    with pytest.raises(ProtocolError) as widened:
        protocol.verify_receipt(json.dumps(body).encode(), public, commune="sang-moc", node="bc-01")
    assert widened.value.reason == "bad_signature"


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "3", 2**53 + 2])
def test_an_ack_number_must_be_a_positive_integer(n):
    body = json.loads(ack(1))
    body["n"] = n
    with pytest.raises(ProtocolError, match="bad_n"):
        protocol.parse_ack(json.dumps(body).encode())


async def test_the_same_ack_twice_is_one_journal_row(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path)
    first = Ack(node="bc-01", playlist="p-1", status="played", ts=1_800_000_000, detail="")
    journal.record_ack(first, "ban-chuong")
    journal.record_ack(first, "ban-chuong")  # sent again: the receipt was lost
    await journal.flush()
    journal.record_ack(first, "ban-chuong")  # sent again after a daemon restart
    journal.record_ack(dataclasses.replace(first, status="failed"), "ban-chuong")
    await journal.flush()
    assert [a.status for a in journal.acks_for("p-1")] == ["played", "failed"]
    journal.close()
    assert verify(path) is None  # refused copies leave no trace in the audit chain
