"""The speaker's state file: two slots saved in place; a torn save falls back to the other."""

from __future__ import annotations

import json

import pytest

from broadcastd.errors import BroadcastdError
from broadcastd.node.statefile import SLOT_NAMES, StateFile


def reopened(path) -> StateFile:
    state_file = StateFile(path)
    state_file.load()
    return state_file


def test_saves_alternate_between_two_slots_and_the_newest_wins(tmp_path):
    state_file = StateFile(tmp_path)
    assert state_file.load() is None  # never saved: a fresh speaker
    for volume in (10, 20, 30):
        state_file.save({"volume": volume})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SLOT_NAMES)
    again = StateFile(tmp_path)
    assert again.load() == {"volume": 30}
    assert again.generation == 3
    again.save({"volume": 40})  # written over generation 2, the older slot
    assert StateFile(tmp_path).load() == {"volume": 40}


def test_a_save_torn_by_a_power_cut_falls_back_to_the_one_before(tmp_path, caplog):
    state_file = StateFile(tmp_path)
    state_file.save({"played": ["a"]})
    state_file.save({"played": ["a", "b"]})
    newest = tmp_path / SLOT_NAMES[0]  # generation 2
    whole = newest.read_bytes()
    newest.write_bytes(whole[: len(whole) // 2])  # the power went mid-write
    assert StateFile(tmp_path).load() == {"played": ["a"]}
    assert "using the other, complete copy" in caplog.text
    newest.write_bytes(whole.replace(b'"b"', b'"c"'))  # whole JSON, wrong bytes: not trusted
    assert StateFile(tmp_path).load() == {"played": ["a"]}


def test_a_shorter_save_leaves_no_tail_of_the_longer_one(tmp_path):
    state_file = StateFile(tmp_path)
    state_file.save({"played": ["x" * 500]})
    state_file.save({"played": []})
    state_file.save({"played": []})  # over the 500-byte one, in place
    assert json.loads((tmp_path / SLOT_NAMES[1]).read_bytes())["state"] == {"played": []}
    assert reopened(tmp_path).generation == 3


def test_no_complete_slot_refuses_to_start(tmp_path):
    (tmp_path / SLOT_NAMES[0]).write_text("{not json")
    (tmp_path / SLOT_NAMES[1]).write_text("[]")
    with pytest.raises(BroadcastdError, match="unreadable node state") as info:
        StateFile(tmp_path).load()
    assert SLOT_NAMES[0] in str(info.value)
    assert "not a JSON object but list" in str(info.value)


def test_an_older_versions_state_json_loads_and_is_then_replaced(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"played": ["old"], "volume": 35}))
    state_file = StateFile(tmp_path)
    assert state_file.load() == {"played": ["old"], "volume": 35}
    state_file.save({"played": ["old", "new"], "volume": 35})  # generation 1: the other slot
    state_file.save({"played": ["old", "new"], "volume": 50})  # generation 2: over the old file
    assert json.loads((tmp_path / "state.json").read_bytes())["generation"] == 2
    assert StateFile(tmp_path).load() == {"played": ["old", "new"], "volume": 50}


def test_a_failed_save_keeps_the_last_complete_one(tmp_path):
    state_file = StateFile(tmp_path)
    state_file.save({"volume": 10})  # generation 1, slot 1
    (tmp_path / SLOT_NAMES[0]).mkdir()  # slot 0 cannot be written (even by root)
    with pytest.raises(IsADirectoryError):
        state_file.save({"volume": 20})
    assert state_file.generation == 1
    (tmp_path / SLOT_NAMES[0]).rmdir()
    state_file.save({"volume": 30})  # the same slot again, now it can be
    assert StateFile(tmp_path).load() == {"volume": 30}


def test_prepare_creates_both_files_empty_so_no_save_creates_one(tmp_path, caplog):
    state_file = StateFile(tmp_path)
    assert state_file.load() is None
    state_file.prepare()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SLOT_NAMES)
    assert all((tmp_path / name).stat().st_size == 0 for name in SLOT_NAMES)
    assert StateFile(tmp_path).load() is None  # empty files: never saved into
    state_file.save({"volume": 10})
    again = StateFile(tmp_path)
    assert again.load() == {"volume": 10}
    again.prepare()  # both exist: nothing to do
    assert "complete copy" not in caplog.text  # an empty slot is not a torn one
