"""The content-addressed store: names by hash, index by render key, atomic writes, pruning."""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING

import pytest

from broadcastd.errors import RenderError
from broadcastd.render.store import AudioStore

if TYPE_CHECKING:
    from pathlib import Path


def test_put_names_blob_by_hash_and_indexes_key(tmp_path: Path):
    store = AudioStore(tmp_path / "audio")
    data = b"\xff\xf3" + b"x" * 500
    clip = store.put("k1", data, "mp3", 1234, engine="espeak")
    sha = hashlib.sha256(data).hexdigest()
    assert clip.sha256 == sha
    assert clip.path == tmp_path / "audio" / f"{sha}.mp3"
    assert store.path_for(sha) == clip.path
    assert store.read(sha) == data
    found = store.lookup("k1")
    assert found is not None
    assert found[0] == clip
    assert found[1]["engine"] == "espeak"
    assert store.lookup("other") is None
    assert not list((tmp_path / "audio").rglob(".tmp-*"))


def test_truncated_blob_is_not_served(tmp_path: Path):
    store = AudioStore(tmp_path)
    clip = store.put("k", b"a" * 100, "mp3", 10)
    clip.path.write_bytes(b"a" * 40)  # e.g. a disk that lost the tail
    assert store.lookup("k") is None


def test_missing_clip_is_an_error(tmp_path: Path):
    with pytest.raises(RenderError, match="not in the store"):
        AudioStore(tmp_path).read("0" * 64)


def test_prune_keeps_recent_and_drops_unused(tmp_path: Path):
    store = AudioStore(tmp_path)
    old = store.put("old", b"old audio", "mp3", 10)
    new = store.put("new", b"new audio", "mp3", 10)
    orphan_tmp = tmp_path / ".tmp-dead"
    orphan_tmp.write_bytes(b"partial")
    now = time.time()
    week_ago = now - 7 * 86400
    for path in (old.path, tmp_path / "index" / "old.json", orphan_tmp):
        os.utime(path, (week_ago, week_ago))
    removed = store.prune(3 * 86400, now=now)
    assert removed == 3
    assert store.lookup("old") is None
    assert store.path_for(old.sha256) is None
    assert not orphan_tmp.exists()
    assert store.lookup("new") is not None
    assert store.path_for(new.sha256) == new.path


def test_shared_blob_survives_while_any_key_uses_it(tmp_path: Path):
    store = AudioStore(tmp_path)
    a = store.put("a", b"same", "mp3", 1)
    store.put("b", b"same", "mp3", 1)
    past = time.time() - 10 * 86400
    os.utime(tmp_path / "index" / "a.json", (past, past))
    os.utime(a.path, (past, past))
    store.prune(86400)
    assert store.lookup("b") is not None
