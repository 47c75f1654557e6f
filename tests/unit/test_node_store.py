"""The speaker's memory: replay marks, at-most-once ids, volume, resumable verified audio."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from broadcastd import protocol
from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.node.store import NodeStore, StopMark


def opened(tmp_path) -> NodeStore:
    store = NodeStore(tmp_path / "cache")
    store.open()
    return store


def test_state_survives_a_restart(tmp_path):
    store = opened(tmp_path)
    store.accept("playlist", issued_at=100, seq=5, slot="noon")
    store.mark_played("noon-1")
    store.mark_cancelled("noon-2")
    store.set_volume(35)
    store.accept_control("c-1", issued_at=100, expires_at=700, seq=6, now=100)
    again = opened(tmp_path)
    assert again.state.played == {"noon-1"}
    assert again.state.cancelled == {"noon-2"}
    assert again.state.volume == 35
    assert again.state.slot_issued == {"noon": 100}
    assert again.state.seq == {"playlist": 5, "control": 6}
    assert "c-1" in again.state.controls
    # Saved in place, alternating between two files: no temp file left next to them.
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "clips",
        "partial",
        "state.1.json",
        "state.json",
    ]


def test_replay_rules(tmp_path):
    store = opened(tmp_path)
    store.accept("playlist", issued_at=100, seq=5, slot="noon")
    store.check_replay("playlist", issued_at=100, seq=5, slot="noon")  # the same again is fine
    store.check_replay("playlist", issued_at=50, seq=None, slot="afternoon")  # other slot
    store.check_replay("control", issued_at=1, seq=1)  # seq is counted per envelope kind
    with pytest.raises(ProtocolError, match="older") as info:
        store.check_replay("playlist", issued_at=99, seq=None, slot="noon")
    assert info.value.reason == "replay"
    with pytest.raises(ProtocolError, match="seq 4"):
        store.check_replay("playlist", issued_at=200, seq=4, slot="noon")


def test_expired_control_ids_are_forgotten(tmp_path):
    store = opened(tmp_path)
    store.accept_control("old", issued_at=1, expires_at=10, seq=None, now=5)
    store.accept_control("new", issued_at=20, expires_at=30, seq=None, now=20)
    assert set(store.state.controls) == {"new"}


def test_a_corrupt_state_file_refuses_to_start(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "state.json").write_text("{not json")
    with pytest.raises(BroadcastdError, match="unreadable node state"):
        opened(tmp_path)
    (tmp_path / "cache" / "state.json").write_text(json.dumps({"played": 5}))
    with pytest.raises(BroadcastdError, match="unreadable node state"):
        opened(tmp_path)


def test_chunks_resume_and_assemble_verified(tmp_path):
    store = opened(tmp_path)
    data = os.urandom(3 * protocol.CHUNK_SIZE + 10)
    sha = hashlib.sha256(data).hexdigest()
    chunks = list(protocol.iter_chunks(data))
    assert store.write_chunk(sha, 1, chunks[1], 4)
    assert not store.write_chunk(sha, 1, chunks[1], 4)  # already there: not written again
    assert store.missing_chunks(sha, 4) == [0, 2, 3]
    for i in (0, 2, 3):
        store.write_chunk(sha, i, chunks[i], 4)
    assert store.assemble(sha, len(data), 4)
    assert store.clip_path(sha).read_bytes() == data
    assert not (store.partial / sha).exists()


def test_a_bad_clip_is_discarded(tmp_path):
    store = opened(tmp_path)
    data = b"x" * 100
    sha = hashlib.sha256(b"something else").hexdigest()
    store.write_chunk(sha, 0, data, 1)
    assert not store.assemble(sha, 100, 1)
    assert not store.clip_path(sha).is_file()
    assert store.missing_chunks(sha, 1) == [0]  # fetched again from scratch
    assert list(store.clips.iterdir()) == []


def test_a_torn_chunk_record_is_dropped_and_overwritten(tmp_path):
    store = opened(tmp_path)
    data = os.urandom(3 * protocol.CHUNK_SIZE)
    sha = hashlib.sha256(data).hexdigest()
    chunks = list(protocol.iter_chunks(data))
    for i in (0, 1):
        store.write_chunk(sha, i, chunks[i], 3)
    with (store.partial / sha).open("ab") as fh:
        fh.write(b"\x00\x00")  # half a record: the power went while it was being written
    assert store.missing_chunks(sha, 3) == [2]
    store.write_chunk(sha, 2, chunks[2], 3)
    assert store.missing_chunks(sha, 3) == []
    assert store.assemble(sha, len(data), 3)
    assert store.clip_path(sha).read_bytes() == data
    assert list(store.partial.iterdir()) == []


def test_a_download_in_the_old_folder_layout_starts_again(tmp_path):
    store = opened(tmp_path)
    sha = hashlib.sha256(b"clip").hexdigest()
    (store.partial / sha).mkdir()
    (store.partial / sha / "data").write_bytes(b"x" * 10)
    part = store.open_partial(sha, 1)
    assert part is not None
    try:
        assert part.present == set()
    finally:
        part.close()
    assert (store.partial / sha).is_file()


def test_pending_playlists_survive_a_restart_until_finished(tmp_path):
    store = opened(tmp_path)
    store.accept_playlist("noon-1", b'{"id":"noon-1"}', issued_at=100, seq=7, slot="noon")
    store.accept_playlist("eve-1", b'{"id":"eve-1"}', issued_at=100, seq=8, slot="evening")
    assert opened(tmp_path).pending_envelopes() == [b'{"id":"eve-1"}', b'{"id":"noon-1"}']
    # A newer noon playlist replaces the older one in the same durable write.
    store.accept_playlist(
        "noon-2", b'{"id":"noon-2"}', issued_at=200, seq=9, slot="noon", supersedes=["noon-1"]
    )
    again = opened(tmp_path)
    assert again.pending_envelopes() == [b'{"id":"eve-1"}', b'{"id":"noon-2"}']
    assert again.state.seq == {"playlist": 9}
    assert again.state.slot_issued == {"noon": 200, "evening": 100}
    # Finished: gone at once for this run, and from disk with the next save.
    store.drop_pending("eve-1")
    assert store.pending_envelopes() == [b'{"id":"noon-2"}']
    assert len(opened(tmp_path).pending_envelopes()) == 2
    store.mark_played("noon-2")
    store.drop_pending("noon-2")
    store.set_volume(50)
    assert opened(tmp_path).pending_envelopes() == []


def test_the_log_of_chunk_writes_stays_bounded(tmp_path, monkeypatch):
    # a speaker runs for months: its record of writes (for tests and logs) must not grow forever
    monkeypatch.setattr("broadcastd.node.store.WRITES_KEPT", 8)
    store = opened(tmp_path)
    part = store.open_partial("ab" * 32, 20)
    assert part is not None
    for index in range(20):
        part.write(index, b"x")
    part.close()
    assert [i for _, i in store.chunks_written] == list(range(12, 20))


def clip_in(store: NodeStore, data: bytes, *, age_days: float) -> str:
    """A verified clip in the cache, last used `age_days` ago."""
    sha = hashlib.sha256(data).hexdigest()
    assert store.write_chunk(sha, 0, data, 1)
    assert store.assemble(sha, len(data), 1)
    then = time.time() - age_days * 86400
    os.utime(store.clip_path(sha), (then, then))
    return sha


def test_prune_deletes_what_no_playlist_needs_and_nobody_used_for_a_week(tmp_path):
    store = opened(tmp_path)
    old, needed, recent = (
        clip_in(store, c * 100, age_days=d) for c, d in [(b"o", 8), (b"n", 30), (b"r", 6)]
    )
    abandoned = "ab" * 32
    store.write_chunk(abandoned, 0, b"x", 2)  # a download whose playlist expired long ago
    then = time.time() - 9 * 86400
    os.utime(store.partial / abandoned, (then, then))
    (store.clips / "notes.txt").write_text("not ours")
    assert sorted(store.prune({needed})) == sorted([old, abandoned])
    assert not store.clip_path(old).exists()
    assert not (store.partial / abandoned).exists()
    assert store.clip_path(needed).exists()
    assert store.clip_path(recent).exists()
    assert (store.clips / "notes.txt").exists()
    assert store.prune({needed}) == []


def test_a_clip_needed_again_counts_as_used_now(tmp_path):
    store = opened(tmp_path)
    intro = clip_in(store, b"intro" * 100, age_days=8)  # plays every day
    assert store.open_partial(intro, 1) is None  # a new playlist needs it: already verified
    assert store.prune(set()) == []
    assert store.clip_path(intro).exists()


def test_a_stop_watermark_only_rises_and_survives_a_restart(tmp_path):
    store = opened(tmp_path)
    assert store.stopped_by("h", issued_at=100, seq=5) is None
    assert store.note_stop("h", StopMark("stop-10", issued_at=100, seq=10))
    store.save()
    assert not store.note_stop("h", StopMark("stop-7", issued_at=90, seq=7))  # an older stop
    assert not store.note_stop("h", StopMark("stop-10", issued_at=100, seq=10))  # the same again
    again = opened(tmp_path)
    # seq orders a playlist and a stop of the same second; issued_at decides without a seq
    assert again.stopped_by("h", issued_at=100, seq=9) == StopMark("stop-10", 100, 10)
    assert again.stopped_by("h", issued_at=100, seq=11) is None
    assert again.stopped_by("h", issued_at=99, seq=None) is not None
    assert again.stopped_by("h", issued_at=100, seq=None) is None
    assert again.stopped_by("other-hamlet", issued_at=1, seq=1) is None
