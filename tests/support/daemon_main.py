"""Run the real Daemon in its own process on a shifted clock, so a test can kill or signal it.

usage: python tests/support/daemon_main.py CONFIG OFFSET_SECONDS [--metrics] [--watch]

The clock is `time.time() + OFFSET_SECONDS`, the same shift `support.e2e.E2E.clock` gives the
in-process agents. Signals are handled exactly as `broadcastd run` handles them; exit codes too
(0 after a clean stop, 78 for a config error, 1 for other failures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.controller.daemon import Daemon
from broadcastd.controller.runner import run_until_stopped
from broadcastd.errors import BroadcastdError, ConfigError
from broadcastd.localtime import use_log_zone

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]


def spawn(
    config: Path,
    offset: float,
    log_path: Path,
    *flags: str,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start this script as a child process; its stderr (the daemon's log) goes to `log_path`.
    `prefix` runs it through another command, such as `ip netns exec NAME` (the link lab)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log_path.open("ab") as logf:
        return subprocess.Popen(
            [*prefix, sys.executable, str(HERE), str(config), repr(offset), *flags],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            env=full_env,
        )


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """`proc` for the block; SIGKILLed and waited for afterwards if still running (a failure)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def terminate_timed(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM `proc`; its exit code and the seconds it took to exit (at most 10)."""
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    code = await asyncio.to_thread(proc.wait, 10)
    return code, time.monotonic() - t0


def read_log(log_path: Path) -> str:
    """The daemon's log so far (small; reading it on the loop is harmless in a test)."""
    return log_path.read_text(encoding="utf-8", errors="replace")


async def wait_log(
    log_path: Path,
    text: str,
    proc: subprocess.Popen[bytes],
    timeout: float = 20.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    *,
    count: int = 1,
) -> None:
    """Wait until `text` appears `count` times in the log; fail fast if the process died."""
    deadline = time.monotonic() + timeout
    while read_log(log_path).count(text) < count:
        if proc.poll() is not None:
            tail = read_log(log_path)[-2000:]
            raise AssertionError(f"daemon exited {proc.returncode} before {text!r}:\n{tail}")
        if time.monotonic() > deadline:
            tail = read_log(log_path)[-2000:]
            raise AssertionError(f"no {text!r} in the daemon log within {timeout:.0f}s:\n{tail}")
        await asyncio.sleep(0.05)


async def _stubborn_sweep(_self: Daemon) -> None:
    """Stands in for a task whose cancellation never completes (as a stuck subprocess start)."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("offset", type=float)
    parser.add_argument("--metrics", action="store_true", help="serve metrics.listen")
    parser.add_argument("--watch", action="store_true", help="reload when config files change")
    parser.add_argument(
        "--stubborn", action="store_true", help="a task that ignores cancellation (stop deadline)"
    )
    args = parser.parse_args()
    if args.stubborn:
        Daemon._sweep = _stubborn_sweep  # type: ignore[method-assign, assignment]
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    offset: float = args.offset
    try:
        daemon = Daemon(
            args.config,
            clock=lambda: time.time() + offset,
            engines=["espeak"],
            serve_metrics=args.metrics,
            watch_files=args.watch,
        )
        use_log_zone(lambda: daemon.config.commune.tz)  # as `broadcastd run` does
        run_until_stopped(daemon)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    except BroadcastdError as exc:
        print(f"daemon_main: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
