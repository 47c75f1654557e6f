"""Issue 20: revoking a speaker cuts it off at once and for good, and touches nobody else.

Real daemon with the speakers' TLS listener, real reference agents over TLS (the fleet), the real
`broadcastd node-revoke` command; timings are measured from the command's start."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

from support.e2e import wait_for, write_commune

from broadcastd.transport.credentials import Credentials

BIN = Path(sys.executable).parent
REVOKED = "h00-n0"


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "broadcastd", *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_a_revoked_node_is_cut_off_within_5s_and_refused_others_untouched(tmp_path, caplog):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, tls=True)
    async with e2e.running(scheduling=False) as run:
        fleet = run.fleet
        daemon = run.daemon

        def all_online() -> bool:
            return all(daemon.registry.state(n) == "online" for n in e2e.node_ids)

        await wait_for(all_online, 20, "every node online over TLS")
        links = {n: sim.agent.link for n, sim in fleet.agents.items() if sim.agent is not None}
        # Each agent's audio lane logs in as `<node>_bulk`: revoked with the node, or not at all.
        lanes = {n: sim.agent.bulk for n, sim in fleet.agents.items() if sim.agent is not None}
        await wait_for(lambda: all(b.connected.is_set() for b in lanes.values()), 20, "lanes up")
        assert all(link.settings.tls for link in links.values())
        before = {n: link.connects for n, link in links.items()}
        before_lanes = {n: lane.connects for n, lane in lanes.items()}
        caplog.set_level(logging.INFO)
        started = time.monotonic()
        done = asyncio.create_task(
            asyncio.to_thread(
                cli, "node-revoke", REVOKED, "-c", e2e.config_path, "--operator", "an"
            )
        )
        await wait_for(lambda: not links[REVOKED].connected.is_set(), 5, "the revoked node cut off")
        cut_after = time.monotonic() - started
        await wait_for(lambda: not lanes[REVOKED].connected.is_set(), 5, "its audio lane cut off")
        revoked = await done
        assert revoked.returncode == 0, revoked.stderr
        answer = json.loads(revoked.stdout)
        assert answer["node"] == REVOKED
        assert answer["disconnected_within_s"] < 5
        assert "journaled: operator 'an' as given (not verified)" in revoked.stderr

        def refused_twice() -> bool:
            return sum(f"refused the login '{REVOKED}'" in r.message for r in caplog.records) >= 2

        await wait_for(refused_twice, 10, "its reconnects refused, with a clear log line")
        assert not links[REVOKED].connected.is_set()
        assert not lanes[REVOKED].connected.is_set()
        others = [n for n in e2e.node_ids if n != REVOKED]
        assert {n: links[n].connects for n in others} == {n: before[n] for n in others}
        assert all(links[n].connected.is_set() for n in others)
        assert {n: lanes[n].connects for n in others} == {n: before_lanes[n] for n in others}
        assert all(daemon.registry.state(n) == "online" for n in others)
        await daemon.journal.flush()
        (event,) = [json.loads(d) for d in daemon.journal.event_details("revoke")]
        assert event == {
            "node": REVOKED, "cause": "node-revoke", "operator": "an",
            "unix_user": pwd.getpwuid(os.getuid()).pw_name, "uid": os.getuid(), "pid": event["pid"],
        }  # fmt: skip
    print(f"revoked node cut off after {cut_after:.2f}s (target < 5 s)")
    creds = Credentials.load_or_create(e2e.config)
    assert REVOKED not in creds.passwords
    assert REVOKED in creds.revoked
    again = cli("node-config", REVOKED, "-c", e2e.config_path)
    assert again.returncode == 1
    assert "--new-login` gives it a new password" in again.stderr
    renewed = cli("node-config", REVOKED, "-c", e2e.config_path, "--new-login")
    assert renewed.returncode == 0, renewed.stderr
    assert REVOKED not in Credentials.load_or_create(e2e.config).revoked


async def test_a_node_removed_from_the_config_is_cut_off_by_the_reload(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=2, tls=True)
    async with e2e.running(scheduling=False) as run:
        await wait_for(
            lambda: all(run.daemon.registry.state(n) == "online" for n in e2e.node_ids),
            20,
            "both nodes online",
        )
        gone = run.fleet.agents["h00-n1"].agent
        kept = run.fleet.agents["h00-n0"].agent
        assert gone is not None
        assert kept is not None
        text = e2e.config_path.read_text(encoding="utf-8")
        e2e.config_path.write_text(
            text.replace(", {id: h00-n1, households: 10}", ""), encoding="utf-8"
        )
        started = time.monotonic()
        assert await run.daemon.reload()
        await wait_for(lambda: not gone.link.connected.is_set(), 5, "the removed node cut off")
        assert time.monotonic() - started < 5
        await asyncio.sleep(1.5)  # its reconnects (backoff 0.5 s) are refused meanwhile
        assert not gone.link.connected.is_set()
        assert kept.link.connected.is_set()
        assert kept.link.connects == 1
        await run.daemon.journal.flush()
        details = [json.loads(d) for d in run.daemon.journal.event_details("revoke")]
        assert details == [{"node": "h00-n1", "cause": "removed from the config"}]
