"""Running the daemon as a process: an asyncio runner whose forced exit is bounded."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Coroutine


class Stoppable(Protocol):
    """What the runner needs of the daemon: its main coroutine and how long tasks may unwind."""

    unwind_s: float

    def run(self) -> Coroutine[Any, Any, None]: ...


log = logging.getLogger(__name__)

FORCE_EXIT_S = 1.0  # after a second signal, tasks get this long to unwind


def run_until_stopped(daemon: Stoppable) -> None:
    """`asyncio.run(daemon.run())`, except that a forced exit (a second signal) is bounded.

    asyncio.run() then cancels every task, asyncio's internal ones included, and waits for them
    without a bound; a helper process start-up cancelled that way can wait forever (CPython
    gh-125502: seen here as a render's ffmpeg start hanging the exit). Here the tasks get
    `daemon.unwind_s` to unwind (broker stopped, journal closed), then the process exits anyway;
    a helper still running sees its pipes close and ends too.
    """
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(daemon.run())
    except SystemExit:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=daemon.unwind_s))
        raise  # the loop is left open on purpose: whatever did not unwind ends with the process
    except BaseException:
        loop.close()
        raise
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
