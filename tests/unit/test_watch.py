"""The config watcher on real files: `poll(now)` with explicit times, plus short real-time runs."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from broadcastd.controller.configwatch import ConfigWatcher, parent_dirs
from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from pathlib import Path


async def _never() -> None:
    raise AssertionError("poll() tests never fire on_change")


def _watcher(files: list[Path], dirs: list[Path] | None = None, debounce: float = 2.0):
    watcher = ConfigWatcher(
        lambda: files, _never, dirs=(lambda: dirs) if dirs is not None else None, debounce=debounce
    )
    watcher.baseline()
    return watcher


def test_no_change_never_fires(tmp_path):
    config = tmp_path / "broadcastd.yaml"
    config.write_text("a: 1\n")
    watcher = _watcher([config])
    assert not any(watcher.poll(t) for t in range(100))


def test_a_burst_of_writes_fires_once_after_the_quiet_period(tmp_path):
    config = tmp_path / "broadcastd.yaml"
    config.write_text("a: 1\n")
    watcher = _watcher([config], debounce=2.0)
    # an editor saving: truncate, write, write again, each a poll apart
    config.write_text("")
    assert not watcher.poll(1.0)
    config.write_text("a: 2\n")
    assert not watcher.poll(2.0)
    config.write_text("a: 2\nb: 3\n")
    assert not watcher.poll(3.0)
    assert watcher.pending
    assert not watcher.poll(4.0), "only 1 s quiet"
    assert watcher.poll(5.0), "2 s quiet since the last write"
    assert not watcher.pending
    assert not any(watcher.poll(t) for t in (6.0, 7.0, 8.0)), "fires once per burst"


def test_same_size_rewrite_is_noticed(tmp_path):
    config = tmp_path / "broadcastd.yaml"
    config.write_text("at: 11:30\n")
    watcher = _watcher([config], debounce=0.0)
    before = config.stat().st_mtime_ns
    config.write_text("at: 11:45\n")
    os.utime(config, ns=(before, before))  # even with the mtime put back, ctime moves
    assert not watcher.poll(1.0)
    assert watcher.poll(1.0)


def test_rename_over_the_file_is_noticed(tmp_path):
    # vim and most tools save by writing a new file and renaming it over the old one
    config = tmp_path / "broadcastd.yaml"
    config.write_text("a: 1\n")
    watcher = _watcher([config], debounce=1.0)
    tmp = tmp_path / ".broadcastd.yaml.swp"
    tmp.write_text("a: 1\n")
    tmp.replace(config)
    assert not watcher.poll(1.0)
    assert watcher.poll(2.0)


def test_deleted_file_counts_as_a_change(tmp_path):
    config = tmp_path / "broadcastd.yaml"
    config.write_text("a: 1\n")
    watcher = _watcher([config], debounce=1.0)
    config.unlink()
    assert not watcher.poll(1.0)
    assert watcher.poll(2.0), "the reload then reports the missing file and keeps the old config"


def test_new_included_file_is_noticed_through_its_directory(tmp_path):
    config = tmp_path / "broadcastd.yaml"
    config.write_text("include: [announcements/*.yaml]\n")
    announcements = tmp_path / "announcements"
    announcements.mkdir()
    (announcements / "a.yaml").write_text("[]\n")
    files = [config, announcements / "a.yaml"]
    watcher = _watcher(files, dirs=parent_dirs(files), debounce=1.0)
    assert parent_dirs(files) == sorted([tmp_path, announcements])
    (announcements / "b.yaml").write_text("[]\n")
    assert not watcher.poll(1.0)
    assert watcher.poll(2.0)


def test_editor_litter_beside_the_config_is_ignored(tmp_path):
    config = tmp_path / "broadcastd.yaml"
    config.write_text("a: 1\n")
    watcher = _watcher([config], dirs=[tmp_path], debounce=0.0)
    (tmp_path / ".broadcastd.yaml.swp").write_text("swap")
    (tmp_path / "broadcastd.yaml~").write_text("backup")
    assert not any(watcher.poll(t) for t in (1.0, 2.0, 3.0))


def test_a_file_joining_the_watched_set_is_not_an_edit(tmp_path):
    # after a reload that adds an include, files() grows; that alone must not trigger another reload
    config = tmp_path / "broadcastd.yaml"
    config.write_text("a: 1\n")
    extra = tmp_path / "more.yaml"
    extra.write_text("[]\n")
    files = [config]
    watcher = _watcher(files, debounce=0.0)
    files.append(extra)
    assert not watcher.poll(1.0)
    assert not watcher.poll(2.0)
    extra.write_text("- id: x\n")
    assert not watcher.poll(3.0)
    assert watcher.poll(3.0), "but it is watched from then on"


async def test_run_calls_on_change_once_per_burst(tmp_path):
    config = tmp_path / "broadcastd.yaml"
    config.write_text("a: 1\n")
    loop = asyncio.get_running_loop()
    calls: asyncio.Queue[float] = asyncio.Queue()

    async def on_change() -> bool:
        calls.put_nowait(loop.time())
        return True

    watcher = ConfigWatcher(lambda: [config], on_change, interval=0.02, debounce=0.2)
    task = asyncio.create_task(watcher.run())
    await asyncio.sleep(0.05)
    for i in range(4):  # writes 0.05 s apart: never quiet for 0.2 s until the last one
        config.write_text(f"a: {i}\n" * (i + 1))
        last_write = loop.time()
        await asyncio.sleep(0.05)
    fired_at = await asyncio.wait_for(calls.get(), 1.5)
    await asyncio.sleep(0.3)  # a second call would have come by now
    task.cancel()
    assert calls.empty(), "one reload per burst"
    assert fired_at - last_write >= 0.2
    assert watcher.changes_fired == 1


async def test_run_survives_a_failed_reload(tmp_path, caplog):
    config = tmp_path / "broadcastd.yaml"
    config.write_text("a: 1\n")
    calls: asyncio.Queue[None] = asyncio.Queue()

    async def on_change() -> None:
        calls.put_nowait(None)
        raise BroadcastdError("broadcastd.yaml:1:1: bad")

    watcher = ConfigWatcher(lambda: [config], on_change, interval=0.01, debounce=0.03)
    task = asyncio.create_task(watcher.run())
    await asyncio.sleep(0.03)
    for text in ("a: 2\n", "a: 33\n"):
        config.write_text(text)
        await asyncio.wait_for(calls.get(), 1.0)
    task.cancel()
    assert watcher.changes_fired == 2, "still watching after the first reload failed"
    assert "broadcastd.yaml:1:1: bad" in caplog.text
