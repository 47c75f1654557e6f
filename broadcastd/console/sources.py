"""Where the console's facts come from: the journal (read-only) and the daemon's control socket.

The journal may not exist yet (a daemon that never ran) or may appear later; it is opened on
first use and its queries run in worker threads, so a slow disk never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from broadcastd.controller.controlsocket import request
from broadcastd.journal.history import History
from broadcastd.journal.store import Journal

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

T = TypeVar("T")
READ_TIMEOUT_S = 2.0  # a page waits at most this for the daemon, then shows it as not answering
ACT_TIMEOUT_S = 60.0  # an announcement is rendered before the daemon answers (as for the CLI)


class JournalSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._journal: Journal | None = None
        self._history: History | None = None
        self._lock = threading.Lock()

    def _open(self) -> tuple[Journal, History] | None:
        with self._lock:
            if self._journal is None or self._history is None:
                if not self.path.exists():
                    return None
                self._journal = Journal.open(self.path, readonly=True)
                self._history = History(self.path)
            return self._journal, self._history

    async def read(self, fn: Callable[[Journal, History], T], default: T) -> T:
        """`fn(journal, history)` in a worker thread, or `default` while there is no journal."""

        def call() -> T:
            opened = self._open()
            return default if opened is None else fn(*opened)

        return await asyncio.to_thread(call)

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
            if self._history is not None:
                self._history.close()
            self._journal = self._history = None


class DaemonSource:
    """Read requests to the running daemon (controller/reads.py), version 1, and actions."""

    def __init__(self, socket_path: Path) -> None:
        self.path = socket_path

    async def ask(self, cmd: str) -> dict[str, Any]:
        return await request(self.path, {"cmd": cmd, "v": 1}, timeout=READ_TIMEOUT_S)

    async def act(self, operator: str, payload: dict[str, Any]) -> dict[str, Any]:
        """An action for `operator`, whom the console logged in: the daemon journals them as
        such (`via: console`), because this process runs as the daemon's own Unix user."""
        return await request(
            self.path, {**payload, "operator": operator, "via": "console"}, timeout=ACT_TIMEOUT_S
        )
