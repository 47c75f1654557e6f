"""Speaker-side controls from node.yaml: commands the agent runs, so any hardware can plug in.

- `amp_on` / `amp_off` / `amp_warmup`: the amplifier is switched on (then given its warm-up)
  before the first clip plays and off once nothing has played for AMP_HOLD_S: after the last
  clip, and after a stop, a cancel or an emergency's cut-in that nothing follows. Holding it on
  that long keeps it on between the clips of a bulletin and when an emergency follows at once;
  `amp_off` also runs when the agent starts (a crashed run may have left it on) and stops.
- `telemetry`: run every heartbeat; its JSON object (`battery_pct`, `mains`, `temperature_c`,
  `signal_dbm`, each optional) goes into the heartbeats (DESIGN.md §5), checked and bounded
  here so a broken script cannot put garbage on the wire.

A command that fails or hangs is logged and never stops playback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import ProtocolError

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.node.player import Player
    from broadcastd.node.settings import NodeConfig

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 10.0
AMP_HOLD_S = 2.0
MAX_OUTPUT = 4096


async def run_command(command: str, what: str) -> bytes | None:
    """Run `command` (split like a shell would, no shell); its stdout, or None on failure."""
    argv = shlex.split(command)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        log.error("%s: cannot run %r: %s", what, argv[0], exc.strerror)
        return None
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        log.error("%s: %r did not finish within %.0f s", what, argv[0], COMMAND_TIMEOUT_S)
        return None
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-200:]
        log.error("%s: %r exited with %d: %s", what, argv[0], proc.returncode, tail)
        return None
    return out[:MAX_OUTPUT]


def parse_telemetry(raw: bytes) -> dict[str, object]:
    """The known, well-formed fields of a telemetry command's JSON object; others dropped."""
    try:
        reading = protocol.parse_telemetry(json.dumps({"telemetry": json.loads(raw)}).encode())
    except (ValueError, ProtocolError):
        return {}
    return dict(reading or {})


class Amplifier:
    """A Player wrapper that powers the amplifier around playback (see the module doc)."""

    def __init__(
        self, inner: Player, *, on: str | None, off: str | None, warmup_s: float = 0.0
    ) -> None:
        self.inner = inner
        self.on_command = on
        self.off_command = off
        self.warmup_s = warmup_s
        self.powered = False
        self.switches: list[str] = []  # "on"/"off", in order: for logs and tests
        self._off_timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def play(
        self,
        path: Path,
        volume: int,
        *,
        playlist: str = "",
        sha256: str = "",
        duration_ms: int = 0,
    ) -> None:
        if self._off_timer is not None:
            self._off_timer.cancel()  # the next clip came in time: the amplifier stays on
            self._off_timer = None
        try:
            await self._power_on()
            await self.inner.play(
                path, volume, playlist=playlist, sha256=sha256, duration_ms=duration_ms
            )
        finally:
            self._off_timer = asyncio.create_task(self._off_after(AMP_HOLD_S))

    async def _power_on(self) -> None:
        async with self._lock:
            if self.powered:
                return
            self.powered = True
            self.switches.append("on")
            if self.on_command:
                await run_command(self.on_command, "amp_on")
            if self.warmup_s > 0:
                await asyncio.sleep(self.warmup_s)

    async def _off_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.power_off()

    async def power_off(self, *, force: bool = False) -> None:
        """Switch off now (if on, or always with `force`: at start, after a crash)."""
        async with self._lock:
            if not self.powered and not force:
                return
            self.powered = False
            self.switches.append("off")
            if self.off_command:
                await run_command(self.off_command, "amp_off")

    def abandon(self) -> None:
        """The agent is going away uncleanly (a crash): touch nothing more; the next start
        switches the amplifier off (`power_off(force=True)`)."""
        if self._off_timer is not None:
            self._off_timer.cancel()

    async def close(self) -> None:
        """The agent is stopping: nothing plays any more, switch off now."""
        if self._off_timer is not None:
            self._off_timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._off_timer
        await self.power_off()


class Telemetry:
    """Runs the telemetry command every heartbeat; `heartbeat_fields` has the latest reading."""

    def __init__(self, command: str | None) -> None:
        self.command = command
        self.latest: dict[str, object] = {}

    def heartbeat_fields(self) -> dict[str, object]:
        return {"telemetry": dict(self.latest)} if self.latest else {}

    async def read(self) -> None:
        if self.command is None:
            return
        out = await run_command(self.command, "telemetry")
        if out is not None:
            self.latest = parse_telemetry(out)

    async def run(self, every_s: float) -> None:
        while self.command is not None:
            await self.read()
            await asyncio.sleep(every_s)


def amplifier_for(config: NodeConfig, player: Player) -> tuple[Player, Amplifier | None]:
    """`player` wrapped in an Amplifier if node.yaml names amplifier commands."""
    if not (config.amp_on or config.amp_off):
        return player, None
    amp = Amplifier(
        player,
        on=config.amp_on,
        off=config.amp_off,
        warmup_s=config.amp_warmup.total_seconds(),
    )
    return amp, amp
