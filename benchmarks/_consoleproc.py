"""A real `broadcastd console` process for the benchmarks, and an account to log in with.

The console is started as the operator's server starts it (its own process, `console.listen` from
the config), so what is measured includes its own event loop and nothing of the benchmark's.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from support import console as cs

from broadcastd.cli.main import run as broadcastd

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0


def add_operator(config_path: Path, name: str, role: str) -> None:
    """`broadcastd operator add NAME --role ROLE`, the password (cs.PASSWORD) on stdin."""
    saved = sys.stdin
    sys.stdin = io.StringIO(f"{cs.PASSWORD}\n")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            added = broadcastd(["operator", "add", name, "--role", role, "-c", str(config_path)])
    finally:
        sys.stdin = saved
    if added != 0:
        raise SystemExit(f"operator add {name} failed")


@contextlib.asynccontextmanager
async def console_process(
    config_path: Path, listen: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`broadcastd console -c CONFIG` answering on `listen` for the block, then terminated."""
    console = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", "from broadcastd.cli.main import main; main()"),
        *("console", "-c", str(config_path)),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://{listen}", timeout=5) as http:
            for _ in range(int(START_TIMEOUT_S / 0.1)):
                try:
                    await http.get("/login")
                    break
                except httpx.TransportError:
                    if console.returncode is not None:
                        raise SystemExit("the console exited") from None
                    await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"the console did not answer within {START_TIMEOUT_S:.0f} s")
        yield console
    finally:
        if console.returncode is None:
            console.terminate()
        await asyncio.wait_for(console.wait(), 10)
