"""The console's context, shared by every route: config, accounts, live state, journal,
templates, and the journal's cached chain verification."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broadcastd.console.auth import Auth
from broadcastd.console.confirm import Confirmations
from broadcastd.console.i18n import environments
from broadcastd.console.live import LiveState
from broadcastd.console.sources import DaemonSource, JournalSource
from broadcastd.console.store import ConsoleStore
from broadcastd.journal.audit import AuditError, verify

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import jinja2

    from broadcastd.config import LoadedConfig

CHAIN_RECHECK_S = 300.0


@dataclass
class ChainCheck:
    """The journal's audit chain, verified at most every CHAIN_RECHECK_S (a year of rows takes a
    second or two to walk)."""

    checked_at: float | None = None
    rows: int = 0
    finding: str | None = None
    error: str | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def current(self, journal_path: Path, now: float) -> ChainCheck:
        async with self._lock:
            if self.checked_at is None or now - self.checked_at >= CHAIN_RECHECK_S:
                try:
                    found = await asyncio.to_thread(verify, journal_path)
                    self.finding, self.error = (str(found) if found else None), None
                except AuditError as exc:
                    self.finding, self.error = None, str(exc)
                self.checked_at = now
        return self


@dataclass
class Console:
    loaded: LoadedConfig
    store: ConsoleStore
    auth: Auth
    live: LiveState
    journal: JournalSource
    envs: dict[str, jinja2.Environment]
    clock: Callable[[], float]
    daemon: DaemonSource
    confirmations: Confirmations
    chain: ChainCheck = field(default_factory=ChainCheck)
    streams: int = 0  # open live streams (bounded: each holds a connection)

    @classmethod
    def build(cls, loaded: LoadedConfig, *, clock: Callable[[], float] = time.time) -> Console:
        config = loaded.config
        store = ConsoleStore.open(config.state_dir / "console.sqlite3")
        journal = JournalSource(config.state_dir / "journal.sqlite3")
        daemon = DaemonSource(config.state_dir / "broadcastd.sock")
        return cls(
            loaded=loaded,
            store=store,
            auth=Auth(store, clock=clock, idle_s=config.console.session_idle.total_seconds()),
            live=LiveState(config, daemon, journal, clock=clock),
            journal=journal,
            envs=environments(config.commune.tz),
            clock=clock,
            daemon=daemon,
            confirmations=Confirmations(clock),
        )

    @property
    def audio_root(self) -> Path:
        return self.loaded.config.state_dir / "audio"

    def close(self) -> None:
        self.journal.close()
        self.store.close()
