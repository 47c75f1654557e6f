"""The running daemon: composition root, slot feed, dispatch, operations, control socket, reload."""

from broadcastd.controller.daemon import Daemon
from broadcastd.controller.runner import run_until_stopped

__all__ = ["Daemon", "run_until_stopped"]
