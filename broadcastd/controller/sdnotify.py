"""systemd's notify protocol (sd_notify) over `NOTIFY_SOCKET`, without libsystemd.

A no-op when the daemon does not run under a `Type=notify` unit. A failed send is logged once and
never raises: losing a status line must not take the daemon down (a missed `WATCHDOG=1` is what
systemd itself acts on).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(raw: str | None) -> str | bytes | None:
    """`/run/systemd/notify` is a path; `@name` is a Linux abstract socket (leading NUL byte)."""
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    # systemd also accepts vsock: addresses; they do not occur for a service on the host.
    log.warning("NOTIFY_SOCKET %r is neither a path nor an abstract socket; not notifying", raw)
    return None


class SdNotifier:
    """Send `READY=1`, `WATCHDOG=1`, `STOPPING=1`, `RELOADING=1`, `STATUS=...` to systemd.

    The environment is read once, at construction, so a test can pass its own mapping.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET"))
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send fields like `READY=1` in one datagram; True if it was sent.

        `RELOADING=1` gets `MONOTONIC_USEC=` added, which `Type=notify-reload` requires.
        """
        if self._address is None or not fields:
            return False
        lines = list(fields)
        if "RELOADING=1" in lines and not any(f.startswith("MONOTONIC_USEC=") for f in lines):
            lines.append(f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        data = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(data)
        except OSError as exc:
            if not self._warned:
                # Once: a vanished socket would otherwise log on every watchdog ping.
                log.warning(
                    "sd_notify to %r failed: %s (further failures are not logged)",
                    self._address,
                    exc,
                )
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds (ping at half of it); None if none is armed for us."""
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != os.getpid():
                    return None  # the variables were meant for a parent process, not us
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            log.warning("WATCHDOG_USEC must be an integer, got: %r", self._watchdog_usec)
            return None
        return usec / 1_000_000 if usec > 0 else None
