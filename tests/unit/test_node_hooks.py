"""Speaker-side controls (node.hooks): the amplifier around playback, telemetry parsing."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

import pytest

from broadcastd.node import hooks
from broadcastd.node.hooks import Amplifier, Telemetry, parse_telemetry
from broadcastd.node.settings import NodeConfig


class SlowPlayer:
    """Plays each clip for `seconds`, recording start and end in `log`."""

    def __init__(self, log: list[str], seconds: float = 0.05) -> None:
        self.log = log
        self.seconds = seconds

    async def play(self, path: Path, volume: int, **_: object) -> None:
        assert 0 <= volume <= 100
        self.log.append(f"start {path.name}")
        await asyncio.sleep(self.seconds)
        self.log.append(f"end {path.name}")


def writer(log_file: Path, word: str) -> str:
    """A command that appends `word` to `log_file`, as an amplifier script would switch a GPIO."""
    code = f"open({str(log_file)!r}, 'a').write({word!r} + '\\n')"
    return shlex.join([sys.executable, "-c", code])


@pytest.fixture(autouse=True)
def short_hold(monkeypatch):
    monkeypatch.setattr(hooks, "AMP_HOLD_S", 0.2)


async def test_the_amplifier_is_on_warmed_up_before_the_first_clip_and_off_after_the_last(
    tmp_path,
):
    log: list[str] = []
    switches = tmp_path / "amp.log"
    amp = Amplifier(
        SlowPlayer(log),
        on=writer(switches, "on"),
        off=writer(switches, "off"),
        warmup_s=0.1,
    )
    await amp.play(Path("a.mp3"), 80)
    assert switches.read_text().split() == ["on"]  # on before the first sound
    await amp.play(Path("b.mp3"), 80)  # back to back: stays on
    await asyncio.sleep(0.5)
    assert switches.read_text().split() == ["on", "off"]
    assert amp.switches == ["on", "off"]
    assert log == ["start a.mp3", "end a.mp3", "start b.mp3", "end b.mp3"]


async def test_a_cut_short_clip_switches_the_amplifier_off_unless_another_follows(tmp_path):
    amp = Amplifier(SlowPlayer([], seconds=5), on="true", off="true")
    playing = asyncio.create_task(amp.play(Path("a.mp3"), 80))
    await asyncio.sleep(0.05)
    playing.cancel()  # a stop or a cancel
    with pytest.raises(asyncio.CancelledError):
        await playing
    await asyncio.sleep(0.4)
    assert amp.switches == ["on", "off"]
    first = asyncio.create_task(amp.play(Path("a.mp3"), 80))
    await asyncio.sleep(0.05)
    first.cancel()  # an emergency cuts in and plays at once: the amplifier stays on
    with pytest.raises(asyncio.CancelledError):
        await first
    emergency = asyncio.create_task(amp.play(Path("e.mp3"), 80))
    await asyncio.sleep(0.4)
    assert amp.switches == ["on", "off", "on"]
    emergency.cancel()
    await amp.close()  # the agent stops: off at once
    assert amp.switches == ["on", "off", "on", "off"]


async def test_a_failing_amplifier_command_never_stops_playback():
    log: list[str] = []
    amp = Amplifier(SlowPlayer(log), on="/nonexistent/amp-on", off="false")
    await amp.play(Path("a.mp3"), 80)
    await amp.close()
    assert log == ["start a.mp3", "end a.mp3"]


def test_telemetry_keeps_known_fields_in_range_and_drops_the_rest():
    raw = b'{"battery_pct": 62.34, "mains": false, "temperature_c": 999, "signal_dbm": -87,'
    raw += b' "label": "x", "battery_pct_2": 5}'
    assert parse_telemetry(raw) == {"battery_pct": 62.3, "mains": False, "signal_dbm": -87.0}
    assert parse_telemetry(b"not json") == {}
    assert parse_telemetry(b"[1, 2]") == {}
    assert parse_telemetry(b'{"mains": "yes", "battery_pct": true}') == {}


async def test_the_telemetry_command_feeds_the_heartbeat(tmp_path):
    code = 'print(\'{"battery_pct": 80, "mains": true}\')'
    telemetry = Telemetry(shlex.join([sys.executable, "-c", code]))
    assert telemetry.heartbeat_fields() == {}
    await telemetry.read()
    assert telemetry.heartbeat_fields() == {"telemetry": {"battery_pct": 80.0, "mains": True}}


def test_node_yaml_commands_must_split(tmp_path):
    base = {
        "node": {"id": "n1", "hamlet": "h1", "commune": "c1"},
        "broker": {"url": "mqtt://127.0.0.1:1883"},
        "public_key": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
        "cache_dir": str(tmp_path),
    }
    config = NodeConfig.model_validate({**base, "amp_on": "gpio set 17", "amp_warmup": "2s"})
    assert config.amp_warmup.total_seconds() == 2
    with pytest.raises(ValueError, match="split"):
        NodeConfig.model_validate({**base, "telemetry": "read 'unclosed"})
