"""Waiting for mosquitto's database on disk: it saves on a clock (broker.py), or when asked."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broadcastd.transport.broker import MosquittoProcess


async def saved(broker: MosquittoProcess, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a polling deadline
    """Ask `broker` to save (SIGUSR1, as the daemon does after publishing) and wait until it has.

    mosquitto writes a new file and renames it over mosquitto.db: a new inode is a finished save.
    """
    db = broker.directory / "mosquitto.db"
    before = db.stat().st_ino if db.exists() else None
    broker.save()
    deadline = time.monotonic() + timeout
    while not db.exists() or db.stat().st_ino == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"mosquitto did not save {db} within {timeout:.0f}s")
        await asyncio.sleep(0.02)
