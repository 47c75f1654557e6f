"""Players: how a speaker turns a verified clip into sound. Cancelling `play` stops the sound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import time
from typing import TYPE_CHECKING, Protocol

from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

log = logging.getLogger(__name__)


class PlayerError(BroadcastdError):
    """A clip could not be played (player missing, crashed, or exited non-zero)."""


class Player(Protocol):
    async def play(
        self,
        path: Path,
        volume: int,
        *,
        playlist: str = "",
        sha256: str = "",
        duration_ms: int = 0,
    ) -> None:
        """Play one clip to the end; raise PlayerError on failure; stop at once if cancelled."""
        ...


class CommandPlayer:
    """Runs a command per clip, e.g. `ffplay -nodisp -autoexit -volume {volume} {file}`.

    `{file}` and `{volume}` (0-100; without it the level cannot change) are substituted after
    splitting, so a path with spaces stays one argument. The command runs in its own process
    group so a cancel kills a `sh -c` wrapper's children too.
    """

    def __init__(self, template: str, *, stop_timeout: float = 2.0) -> None:
        self.argv = shlex.split(template)
        if not self.argv:
            raise PlayerError("player command is empty")
        self.stop_timeout = stop_timeout
        if not any("{volume}" in arg for arg in self.argv):
            log.warning(
                "player command has no {volume}: volume controls and schedules will not change"
                " how loud it plays (ffplay takes -volume {volume})"
            )

    async def play(
        self,
        path: Path,
        volume: int,
        *,
        playlist: str = "",
        sha256: str = "",
        duration_ms: int = 0,
    ) -> None:
        del playlist, sha256, duration_ms  # a real player needs only the file
        argv = [a.replace("{file}", str(path)).replace("{volume}", str(volume)) for a in self.argv]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise PlayerError(f"cannot start player {argv[0]!r}: {exc.strerror}") from None
        try:
            _, stderr = await proc.communicate()
        except asyncio.CancelledError:
            await self._kill(proc)
            raise
        if proc.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip()[-200:]
            raise PlayerError(f"player exited with {proc.returncode}: {tail}")

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class NullPlayer:
    """Plays nothing: logs, waits `duration * speed` (or `seconds`), records every play.

    `plays` holds (playlist, sha256, ts) for every clip started; `finished` those that ran to
    the end. The default speed 0 keeps simulations fast.
    """

    def __init__(
        self,
        *,
        speed: float = 0.0,
        seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.speed = speed
        self.seconds = seconds
        self.clock = clock
        self.plays: list[tuple[str, str, float]] = []
        self.finished: list[tuple[str, str, float]] = []
        self.volumes: list[int] = []

    async def play(
        self,
        path: Path,
        volume: int,
        *,
        playlist: str = "",
        sha256: str = "",
        duration_ms: int = 0,
    ) -> None:
        self.plays.append((playlist, sha256, self.clock()))
        self.volumes.append(volume)
        log.info("playing %s (%s) at volume %d", path.name, playlist, volume)
        wait = self.seconds if self.seconds is not None else duration_ms / 1000 * self.speed
        await asyncio.sleep(max(0.001, wait))
        self.finished.append((playlist, sha256, self.clock()))
