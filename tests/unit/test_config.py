"""The example commune loads, is realistic, and keeps where every value came from."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from broadcastd.config import Config, LoadedConfig, load_config
from broadcastd.plan.slotplan import build_plan, plan_warnings

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "config" / "sang-moc.yaml"


@pytest.fixture(scope="module")
def loaded_example() -> LoadedConfig:
    return load_config(EXAMPLE)


@pytest.fixture(scope="module")
def example(loaded_example: LoadedConfig) -> Config:
    return loaded_example.config


def test_example_is_the_commune_of_the_design(example: Config) -> None:
    assert (example.commune.id, example.commune.name) == ("sang-moc", "Xã Sảng Mộc")
    assert example.commune.timezone == "Asia/Ho_Chi_Minh"
    assert [s.at for s in example.slots.values()] == [dt.time(11, 30), dt.time(17, 0)]
    names = {h.name for h in example.hamlets}
    assert {
        "Bản Chương",
        "Khuổi Mèo",
        "Nà Lay",
        "Khuổi Chảo",
        "Tân Lập",
        "Nà Ca",
        "Phú Cốc",
    } <= names
    assert len(example.hamlets) == 10
    assert sum(h.households for h in example.hamlets) > 700
    for h in example.hamlets:
        assert 1 <= len(h.nodes) <= 3
        assert sum(n.households for n in h.nodes) <= h.households
    assert len(example.announcements) >= 6
    assert {"health", "agriculture", "policy", "weather"} <= {
        a.category for a in example.announcements
    }
    # Two hamlets hear recordings in their own language.
    recorded = {lang for a in example.announcements for lang in a.audio}
    assert {h.id for h in example.hamlets if set(h.languages) & recorded} == {
        "ban-chuong",
        "khuoi-meo",
    }


def test_paths_resolve_against_the_file_that_names_them(
    example: Config, loaded_example: LoadedConfig
) -> None:
    assert example.audio.intro == ROOT / "audio" / "chimes" / "intro.wav"
    agriculture = next(a for a in example.announcements if a.id == "sau-cuon-la")
    clip = ROOT / "audio" / "recordings" / "sau-cuon-la-dao.ogg"
    assert agriculture.audio["dao"] == clip  # named from config/announcements/agriculture.yaml
    assert 1.0 < loaded_example.clip_seconds(clip) < 10.0
    assert loaded_example.clip_seconds(example.audio.intro) == pytest.approx(0.6, abs=0.05)
    assert loaded_example.files[0] == EXAMPLE
    assert {f.name for f in loaded_example.files[1:]} == {
        "agriculture.yaml",
        "health.yaml",
        "policy.yaml",
        "weather.yaml",
    }


def test_where_points_into_included_files(example: Config, loaded_example: LoadedConfig) -> None:
    i = next(i for i, a in enumerate(example.announcements) if a.id == "ret-dam")
    loc = loaded_example.where(("announcements", i, "id"))
    assert (loc.file.name, loc.line, loc.col) == ("weather.yaml", 17, 7)


def test_example_has_no_plan_warnings_while_its_windows_run(loaded_example: LoadedConfig) -> None:
    assert plan_warnings(loaded_example, dt.date(2026, 11, 24)) == []


def test_example_plays_something_everywhere_on_later_dates(
    loaded_example: LoadedConfig,
) -> None:
    # Open-ended announcements keep the example useful after its dated windows close.
    for plan in build_plan(loaded_example, dt.date(2027, 6, 7)):  # a Monday
        assert plan.items, (plan.slot, plan.hamlet)
    assert all(p.dropped == () for p in build_plan(loaded_example, dt.date(2026, 11, 23), days=14))
