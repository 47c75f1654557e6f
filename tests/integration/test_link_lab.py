"""The link lab itself (support.linklab, root only): it shapes and delays what it should, and it
leaves no namespace behind, not after a failed test and not after a killed run."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from support import netns
from support.linklab import BROKER_HOST, PROFILES, Lab

# One link lab at a time: `make test` runs in parallel workers (xdist), the lab's namespaces
# and 198.51.100.0/24 addresses are one per machine.
pytestmark = pytest.mark.xdist_group("linklab")


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        pid += 1


async def test_the_lab_shapes_each_end_and_delays_each_direction():
    profile = PROFILES["3g-weak"].calm()
    async with Lab.running(links=2, profile=profile) as lab:
        down = netns.run(["tc", "-n", lab.core, "qdisc", "show", "dev", "c2"])
        up = netns.run(["tc", "-n", lab.links[1].netns, "qdisc", "show", "dev", "s2"])
        assert "tbf" in down
        assert "rate 256Kbit" in down
        assert "tbf" in up
        assert "rate 128Kbit" in up
        host = netns.run(["ip", "-o", "addr", "show"])
        assert "198.51.100." not in host  # the lab's addresses live only in its namespaces

        echo = await asyncio.start_server(_echo, sock=netns.listener_in(lab.core, BROKER_HOST, 7))
        async with echo:
            relay = await lab.links[0].relay(7)
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            started = time.monotonic()
            writer.write(b"ping\n")
            assert await reader.readline() == b"ping\n"
            rtt = time.monotonic() - started
            writer.close()
        # a lower bound: the relay holds each direction for half the profile's RTT
        assert rtt >= profile.rtt_ms / 1000


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def test_the_lab_removes_its_namespaces_after_a_failure_and_after_a_killed_run():
    stale = f"{netns.PREFIX}-{_dead_pid()}-1c"
    netns.run(["ip", "netns", "add", stale])
    sleeper = await asyncio.create_subprocess_exec("ip", "netns", "exec", stale, "sleep", "600")
    made: list[str] = []

    async def failing_test() -> None:
        nonlocal made
        async with Lab.running(links=3, profile=PROFILES["edge"]) as lab:
            made = lab.namespaces
            assert stale not in netns.lab_namespaces()  # a dead run's lab, cleared at start
            assert set(made) <= set(netns.lab_namespaces())
            raise RuntimeError("the test failed")

    try:
        with pytest.raises(RuntimeError, match="the test failed"):
            await failing_test()
        assert await asyncio.wait_for(sleeper.wait(), 10) != 0  # stopped with its namespace
    finally:
        if sleeper.returncode is None:
            sleeper.kill()
            await sleeper.wait()
        netns.remove(stale)
    assert len(made) == 4
    assert not set(made) & set(netns.lab_namespaces())
