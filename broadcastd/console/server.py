"""Running the console under uvicorn until SIGTERM/SIGINT (`broadcastd console`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import uvicorn

from broadcastd.console.app import create_app
from broadcastd.console.context import Console

if TYPE_CHECKING:
    from broadcastd.config import LoadedConfig

log = logging.getLogger(__name__)


def uvicorn_server(ctx: Console, host: str, port: int) -> uvicorn.Server:
    settings = uvicorn.Config(
        create_app(ctx),
        host=host.strip("[]"),
        port=port,
        log_level="warning",
        access_log=False,  # who did what is in the access log; requests need no second record
        proxy_headers=False,  # no proxy is trusted: the peer address is the client's
        server_header=False,
        lifespan="off",
        timeout_keep_alive=10,
        timeout_graceful_shutdown=3,  # live streams never end by themselves; a stop must not wait
        limit_concurrency=200,  # live streams included; beyond it uvicorn answers 503
    )
    return uvicorn.Server(settings)


async def serve(loaded: LoadedConfig) -> None:
    """Serve until stopped; the console's files are closed on the way out."""
    host, _, port = loaded.config.console.listen.rpartition(":")
    ctx = Console.build(loaded)
    try:
        log.info("console listening on http://%s", loaded.config.console.listen)
        await uvicorn_server(ctx, host, int(port)).serve()
    finally:
        ctx.close()
