"""The bulletin on air: at most one at a time, played item by item through the player; a live
emergency may cut it short. Acks `playing`, then `played` or `failed` with the reason."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from broadcastd.node.player import PlayerError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from broadcastd import protocol
    from broadcastd.node.player import Player


def interrupts(pl: protocol.Playlist) -> bool:
    """A live emergency cuts in; an exercise never does, whatever priority it claims."""
    return pl.priority == "emergency" and pl.status == "live"


class OnAir:
    """Plays one playlist at a time; `on_end` is called whenever a bulletin ends, however."""

    def __init__(  # noqa: PLR0913 - what playing needs, injected by the agent
        self,
        player: Player,
        clip_path: Callable[[str], Path],
        ack: Callable[[str, str, str], None],
        *,
        clock: Callable[[], float],
        level: Callable[[protocol.Playlist], int],
        on_end: Callable[[], None],
    ) -> None:
        self.player = player
        self.clip_path = clip_path
        self.ack = ack
        self.clock = clock
        self.level_for = level
        self.on_end = on_end
        self._current: tuple[protocol.Playlist, asyncio.Task[None]] | None = None
        self._stop_reason: dict[str, str] = {}

    @property
    def playlist(self) -> protocol.Playlist | None:
        """What is on air now, if anything."""
        return self._current[0] if self._current is not None else None

    @property
    def level(self) -> int | None:
        """The volume of what is on air now (None if nothing is)."""
        playing = self.playlist
        return None if playing is None else self.level_for(playing)

    def may_start(self, pl: protocol.Playlist) -> bool:
        """Whether `pl` may go on air now: nothing is, or it is an emergency cutting in on a
        bulletin that is not one (call `interrupt` first)."""
        playing = self.playlist
        return playing is None or (interrupts(pl) and not interrupts(playing))

    def start(self, tg: asyncio.TaskGroup, pl: protocol.Playlist, name: str) -> None:
        self._current = (pl, tg.create_task(self._play(pl), name=name))

    async def interrupt(self, reason: str) -> None:
        """Stop what is on air (acked `failed` with `reason`); returns once it has stopped."""
        if self._current is None:
            return
        pl, task = self._current
        self._stop_reason[pl.id] = reason
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._current = None

    async def _play(self, pl: protocol.Playlist) -> None:
        late = self.clock() - pl.play_at
        self.ack(pl.id, "playing", f"late {late:.0f}s" if late >= 1 else "")
        try:
            for item in pl.items:
                # Asked per clip: a volume control takes effect from the next clip on.
                await self.player.play(
                    self.clip_path(item.sha256),
                    self.level_for(pl),
                    playlist=pl.id,
                    sha256=item.sha256,
                    duration_ms=item.duration_ms,
                )
        except asyncio.CancelledError:
            self.ack(pl.id, "failed", self._stop_reason.pop(pl.id, "stopped"))
            raise
        except PlayerError as exc:
            self.ack(pl.id, "failed", str(exc))
        else:
            self.ack(pl.id, "played", "")
        finally:
            if self._current is not None and self._current[0].id == pl.id:
                self._current = None
            self.on_end()
