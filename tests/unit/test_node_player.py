"""Players: a real command that is killed on cancel, and the recording NullPlayer."""

from __future__ import annotations

import asyncio
import time

import pytest

from broadcastd.node.player import CommandPlayer, NullPlayer, PlayerError


async def test_command_player_substitutes_file_and_volume(tmp_path):
    clip = tmp_path / "a clip.bin"
    clip.write_bytes(b"audio")
    out = tmp_path / "out"
    player = CommandPlayer(f'sh -c \'cat "$0" > {out}; echo "$1" >> {out}\' {{file}} {{volume}}')
    await player.play(clip, 42)
    assert out.read_text() == "audio42\n"


async def test_cancel_kills_the_player_and_its_children(tmp_path):
    marker = tmp_path / "finished"
    player = CommandPlayer(f"sh -c 'sleep 5; touch {marker}' {{file}}")
    task = asyncio.create_task(player.play(tmp_path / "x", 80))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2.5
    await asyncio.sleep(0.1)
    assert not marker.exists()


async def test_a_failing_or_missing_player_raises_player_error(tmp_path):
    with pytest.raises(PlayerError, match="exited with 3"):
        await CommandPlayer("sh -c 'echo broken >&2; exit 3' {file}").play(tmp_path / "x", 1)
    with pytest.raises(PlayerError, match="cannot start player"):
        await CommandPlayer("/nonexistent/ffplay {file}").play(tmp_path / "x", 1)


async def test_null_player_records_plays_and_takes_scaled_duration(tmp_path):
    now = [100.0]
    player = NullPlayer(speed=0.001, clock=lambda: now[0])
    started = time.monotonic()
    await player.play(tmp_path / "c.bin", 70, playlist="p1", sha256="ab", duration_ms=100_000)
    assert 0.09 <= time.monotonic() - started < 1.0
    assert player.plays == [("p1", "ab", 100.0)]
    assert player.finished == [("p1", "ab", 100.0)]
    assert player.volumes == [70]
