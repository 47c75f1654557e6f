"""Times as people read them: `2026-12-06 19:55:00+07:00`, in the commune's zone, with its offset.

Log lines (their stamp and any time inside the message) use this form, never raw Unix seconds:
whoever reads a daemon's or a speaker's log compares it with the clock on the office wall, and the
offset keeps a line unambiguous when the machine itself runs on UTC.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

Zone = dt.tzinfo | None  # None: the machine's own zone


def local_time(ts: float, tz: Zone = None) -> str:
    """`ts` (Unix seconds) as `YYYY-MM-DD HH:MM:SS+HH:MM` in `tz`."""
    moment = dt.datetime.fromtimestamp(ts, tz=tz) if tz is not None else _system(ts)
    return moment.isoformat(sep=" ", timespec="seconds")


def _system(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts).astimezone()


class LocalTimeFormatter(logging.Formatter):
    """Stamps each record with `local_time` in the zone `zone()` returns when the line is written
    (a reload may change the commune's zone)."""

    def __init__(self, fmt: str | None, zone: Callable[[], Zone]) -> None:
        super().__init__(fmt)
        self._zone = zone

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        del datefmt  # one form for every line
        return local_time(record.created, self._zone())


def use_log_zone(zone: Zone | Callable[[], Zone]) -> None:
    """Make every handler of the root logger stamp its lines in `zone`, keeping its format."""
    get: Callable[[], Zone] = zone if callable(zone) else lambda: zone
    for handler in logging.getLogger().handlers:
        current = handler.formatter
        handler.setFormatter(LocalTimeFormatter(current._fmt if current else None, get))  # noqa: SLF001 - the format string it was given
