"""The ffprobe cache: an unchanged recording is not probed again; a changed or broken one is."""

from __future__ import annotations

import shutil
from pathlib import Path

from broadcastd.config import mediaprobe

CHIME = Path(__file__).resolve().parents[2] / "audio" / "chimes" / "intro.wav"


def test_unchanged_files_come_from_the_cache(tmp_path, monkeypatch):
    clip = tmp_path / "clip.wav"
    shutil.copy(CHIME, clip)
    broken = tmp_path / "broken.ogg"
    broken.write_text("not audio")
    calls: list[Path] = []
    real = mediaprobe.probe_duration

    def counting(path: Path) -> tuple[float, str]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(mediaprobe, "probe_duration", counting)
    cache = tmp_path / "state"
    cache.mkdir()
    first = mediaprobe.probe_all([clip, broken], cache)
    assert first[clip][0] > 0.3
    assert first[broken] == (0.0, "not a decodable audio file")
    assert sorted(calls) == sorted([clip, broken])

    calls.clear()
    second = mediaprobe.probe_all([clip, broken], cache)
    assert second == first
    assert calls == [broken], "a failure is probed again, a good unchanged file is not"

    calls.clear()
    clip.write_bytes(CHIME.read_bytes()[:-2000])  # edited: new size, new mtime
    mediaprobe.probe_all([clip], cache)
    assert calls == [clip]


def test_a_corrupt_or_unwritable_cache_only_costs_speed(tmp_path):
    clip = tmp_path / "clip.wav"
    shutil.copy(CHIME, clip)
    cache = tmp_path / "state"
    cache.mkdir()
    (cache / mediaprobe.CACHE_NAME).write_text("{not json")
    assert mediaprobe.probe_all([clip], cache)[clip][1] == ""
    missing = tmp_path / "missing" / "dir"
    assert mediaprobe.probe_all([clip], missing)[clip][1] == ""
    assert not missing.exists(), "probing never creates the state directory"
