"""The end-to-end harness itself: `E2E.running` cleans up after a failing test."""

from __future__ import annotations

import pytest
from support.e2e import write_commune


class BlockError(Exception):
    pass


async def test_a_failing_block_still_stops_fleet_and_daemon_and_raises_as_is(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, play_in=600.0)
    with pytest.raises(BlockError):
        async with e2e.running() as run:
            raise BlockError
    assert run.daemon.stopping.is_set()
    assert run.daemon_task.done()
    assert run.daemon_task.exception() is None  # a clean stop, not a cancellation
    assert all(task.done() and task.exception() is None for task in run.fleets.values())
