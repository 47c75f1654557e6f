"""The web console: a separate process showing staff the commune's speakers, schedule, coverage
and journal, over HTTP on loopback; `create_app` and `serve` are its face."""

from broadcastd.console.app import create_app
from broadcastd.console.context import Console
from broadcastd.console.server import serve

__all__ = ["Console", "create_app", "serve"]
