"""Stopping a mosquitto that a SIGKILLed daemon left behind, before starting our own."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)


def reclaim_orphan_broker(conf_path: Path, timeout: float = 5.0) -> list[int]:
    """Stop a mosquitto left running on our own generated config by a daemon that was SIGKILLed.

    The broker runs in its own session (so a terminal's Ctrl-C reaches the daemon only), hence it
    outlives a `kill -9` of the daemon and would hold the listener; the restarted daemon could not
    start its broker. Only a process whose command line is exactly `mosquitto -c <conf_path>` is
    touched. Without /proc (not Linux) there is nothing to scan and nothing is done.
    """
    wanted = str(conf_path)
    stopped: list[int] = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = entry.read_bytes().split(b"\0")
        except OSError:
            continue  # exited while we looked, or not ours to read
        args = [a.decode(errors="replace") for a in argv if a]
        if len(args) == 3 and Path(args[0]).name == "mosquitto" and args[1:] == ["-c", wanted]:
            pid = int(entry.parent.name)
            log.warning("stopping mosquitto %d left over from a previous run (%s)", pid, wanted)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
    deadline = time.monotonic() + timeout
    for pid in stopped:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    return stopped


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its new parent) has let go."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
