"""Issue 17.5: a hamlet's `volume:` schedule and `emergency.volume`, from the config to the level
a speaker plays a playlist at (DESIGN.md §4, §5)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.communes import write_sang_moc

from broadcastd.config import load_config
from broadcastd.errors import ConfigError
from broadcastd.node.store import NodeStore
from broadcastd.plan import PlaylistVolume, playlist_volume
from broadcastd.plan.volume import schedule_wire, schedules_in_force

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
HAMLETS = """
  - {id: ban-chuong, name: "Bản Chương", households: 87, volume: {"06:00": 80, "20:00": 60}}
  - {id: na-lay, name: "Nà Láy", households: 40, volume: 70}
  - {id: khuoi-meo, name: "Khuổi Mèo", households: 30}
emergency: {volume: 95}
"""


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=TZ)


def stamp(when: dt.datetime) -> int:
    return int(when.timestamp())


def test_the_schedule_sets_each_playlists_level_and_emergencies_play_at_theirs(tmp_path):
    config = load_config(write_sang_moc(tmp_path, HAMLETS), probe_media=False).config

    def volume(hamlet: str, when: dt.datetime, priority: str = "normal", status: str = "live"):
        return playlist_volume(config, hamlet, when, priority=priority, status=status)

    assert volume("ban-chuong", at(6, 11, 30)) == PlaylistVolume(80, stamp(at(6, 6)))
    assert volume("ban-chuong", at(6, 19, 59)) == PlaylistVolume(80, stamp(at(6, 6)))
    assert volume("ban-chuong", at(6, 20)) == PlaylistVolume(60, stamp(at(6, 20)))
    # before the day's first entry, last evening's level still holds
    assert volume("ban-chuong", at(7, 5, 59)) == PlaylistVolume(60, stamp(at(6, 20)))
    assert volume("na-lay", at(6, 23)) == PlaylistVolume(70, stamp(at(6, 0)))
    assert volume("khuoi-meo", at(6, 11)) == PlaylistVolume()  # the speaker's own level
    for hamlet in ("ban-chuong", "na-lay", "khuoi-meo"):
        assert volume(hamlet, at(6, 21), "emergency") == PlaylistVolume(95)
    # an exercise never claims an emergency's level
    assert volume("ban-chuong", at(6, 21), "emergency", "exercise") == PlaylistVolume(
        60, stamp(at(6, 20))
    )


def test_an_operators_schedule_stands_in_for_the_configs_until_put_back(tmp_path):
    config = load_config(write_sang_moc(tmp_path, HAMLETS), probe_media=False).config
    journaled: list[dict[str, Any]] = [  # the journal's volume_schedule events, oldest first
        {"hamlets": ["ban-chuong", "khuoi-meo"], "schedule": {"21:00": 20, "05:30": 90}},
        {"hamlets": ["na-lay"], "schedule": {"00:00": 50}},
        {"hamlets": ["na-lay"], "schedule": None},  # back to the config's 70
    ]
    in_force = schedules_in_force(journaled)
    assert set(in_force) == {"ban-chuong", "khuoi-meo"}
    assert schedule_wire(in_force["khuoi-meo"]) == {"05:30": 90, "21:00": 20}

    def volume(hamlet: str, when: dt.datetime, priority: str = "normal"):
        mine = in_force.get(hamlet)
        return playlist_volume(
            config, hamlet, when, priority=priority, status="live", schedule=mine
        )

    assert volume("ban-chuong", at(6, 11)) == PlaylistVolume(90, stamp(at(6, 5, 30)))
    assert volume("khuoi-meo", at(7, 1)) == PlaylistVolume(20, stamp(at(6, 21)))
    assert volume("na-lay", at(6, 23)) == PlaylistVolume(70, stamp(at(6, 0)))
    assert volume("khuoi-meo", at(6, 11), "emergency") == PlaylistVolume(95)


def test_the_default_emergency_level_is_100(tmp_path):
    config = load_config(write_sang_moc(tmp_path), probe_media=False).config
    when = at(6, 12)
    assert config.emergency.volume == 100
    assert playlist_volume(config, "na-lay", when, priority="emergency", status="live").level == 100


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ('{"25:00": 80}', "hamlets[1].volume.25:00: the hour is out of range"),
        ('{"06:00": 101}', "hamlets[1].volume.06:00: input should be less than or equal to 100"),
        ("loud", "hamlets[1].volume: expected a level from 0 to 100, or levels by time of day"),
        ("{}", "hamlets[1].volume: expected a level from 0 to 100, or levels by time of day"),
    ],
)
def test_a_bad_schedule_is_one_clear_line(tmp_path, volume, message):
    hamlets = HAMLETS.replace("volume: 70", f"volume: {volume}")
    with pytest.raises(ConfigError) as exc:
        load_config(write_sang_moc(tmp_path, hamlets), probe_media=False)
    assert [message in str(p) for p in exc.value.problems] == [True]


def test_a_volume_control_outranks_a_scheduled_level_only_since_it_began(tmp_path):
    store = NodeStore(tmp_path / "cache")
    store.open()
    since = stamp(at(6, 20))
    assert store.level_for(None, None) == 80  # no level of its own: the node's default
    assert store.level_for(60, since) == 60
    store.set_volume(40, issued_at=since - 60)  # set before the 20:00 change: the schedule wins
    assert store.level_for(60, since) == 60
    assert store.level_for(None, None) == 40
    store.set_volume(30, issued_at=since + 60)  # set after it: the operator wins until the next
    assert store.level_for(60, since) == 30
    assert store.level_for(95, None) == 95  # never over an emergency's level
    reopened = NodeStore(tmp_path / "cache")
    reopened.open()
    assert reopened.level_for(60, since) == 30
