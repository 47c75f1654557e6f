"""Daemon SIGKILL at random moments: the journal stays intact and the broker's retained playlists
are restored from it on every restart.

The daemon runs in a subprocess (tests/support/daemon_main.py). After each kill the test wipes
every retained playlist on the broker (as the controller), so the next daemon must re-publish
each hamlet's current playlist from its journal: what is retained afterwards must equal
`journal.latest_per_hamlet`, envelope for envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import Any

import aiomqtt
from support.daemon_main import read_log, spawn, wait_log
from support.e2e import write_commune
from support.soak import count

from broadcastd import protocol
from broadcastd.journal.store import Journal
from broadcastd.transport.credentials import Credentials


@dataclass(frozen=True)
class Probe:
    """The broker seen from outside any daemon: read as the monitor; write (while no daemon runs:
    a login is its own client id) as the controller."""

    host: str
    port: int
    creds: Credentials
    root: str

    def client(self, *, write: bool = False) -> aiomqtt.Client:
        user, password = self.creds.controller if write else self.creds.monitor
        return aiomqtt.Client(
            self.host,
            self.port,
            username=user,
            password=password,
            identifier=f"probe-{time.monotonic_ns()}",
            protocol=aiomqtt.ProtocolVersion.V5,
        )


async def _retained_playlists(probe: Probe) -> dict[str, Any]:
    """hamlet -> retained playlist envelope, as the broker holds it now."""
    got: dict[str, Any] = {}
    async with probe.client() as client:
        await client.subscribe(f"{probe.root}/hamlet/+/playlist", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.6):
                async for msg in client.messages:
                    if msg.retain and msg.payload:
                        got[str(msg.topic).split("/")[-2]] = json.loads(bytes(msg.payload))
    return got


async def _wipe_retained(probe: Probe, hamlets: list[str]) -> None:
    async with probe.client(write=True) as client:
        for h in hamlets:
            await client.publish(f"{probe.root}/hamlet/{h}/playlist", b"", qos=1, retain=True)


def _journal_now(path, now: float) -> dict[str, Any]:
    """integrity_check must be ok; hamlet -> the envelope the broker should retain."""
    journal = Journal.open(path, readonly=True)
    try:
        assert journal.integrity_check() == "ok"
        return {r.hamlet: json.loads(r.envelope) for r in journal.latest_per_hamlet(now)}
    finally:
        journal.close()


async def test_daemon_sigkill_at_random_points_keeps_journal_and_retained_playlists(tmp_path):
    seed = int(os.environ.get("BROADCASTD_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    kills = count(5, 50)
    e2e = write_commune(tmp_path, hamlets=3, nodes_per_hamlet=1, play_in=600.0, texts=("Alô.",))
    cfg = e2e.config
    host, _, port = cfg.broker.listen.rpartition(":")
    probe = Probe(
        host,
        int(port),
        Credentials.load_or_create(cfg),
        protocol.Topics(cfg.commune.id).root,
    )
    hamlets = [h.id for h in cfg.hamlets]
    log = tmp_path / "daemon.log"
    journal_path = cfg.state_dir / "journal.sqlite3"
    moments: list[float] = []
    restored: list[int] = []  # hamlets whose playlist came back, after each kill
    started = time.monotonic()
    final = None
    try:
        for i in range(kills + 1):
            proc = spawn(e2e.config_path, e2e.offset, log)
            await wait_log(log, "broadcastd running", proc, 30, count=i + 1)
            if i > 0:
                # The journal the killed daemon left behind: intact, and its current playlists
                # are retained again (the test wiped them while no daemon ran).
                latest = _journal_now(journal_path, e2e.clock())
                deadline = time.monotonic() + 15
                while True:
                    retained = await _retained_playlists(probe)
                    if retained == latest or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                assert retained == latest, f"after kill {i} at {moments[-1]:.2f}s (seed {seed})"
                restored.append(len(latest))
            if i == kills:
                final = proc
                break
            life = rng.uniform(0.0, 1.5)  # mid-render, mid-publish, idle
            await asyncio.sleep(life)
            assert proc.poll() is None, read_log(log)[-3000:]
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            moments.append(life)
            await _wipe_retained(probe, hamlets)
    finally:
        if final is None:
            final = spawn(e2e.config_path, e2e.offset, log)
            with contextlib.suppress(AssertionError):
                await wait_log(log, "broadcastd running", final, 30)
        final.send_signal(signal.SIGTERM)
        await asyncio.to_thread(final.wait, 15)
    assert final.returncode == 0, read_log(log)[-3000:]
    # A kill in the first milliseconds, before the first dispatch, leaves nothing to restore;
    # a journaled playlist is never lost again, and by the last restart every hamlet has one.
    assert restored == sorted(restored), f"{restored} (seed {seed})"
    assert restored[-1] == len(hamlets), f"{restored} (seed {seed})"
    print(
        f"daemon kill: {kills} SIGKILLs (seed {seed}), {sum(restored)} retained playlists restored,"
        f" journal ok each time, {time.monotonic() - started:.1f}s"
    )
