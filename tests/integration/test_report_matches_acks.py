"""`broadcastd report --json` tells staff exactly what the speakers said (issue 6, acceptance 6).

One noon slot, 10 hamlets x 2 reference agents, on the embedded mosquitto, with faults so the
figures are not all 100%: h00 has no agent running at all (offline), h01-n0's amplifier fails
(`playing` then `failed`), h02-n1 crashes after acking `ready` (ready, never played). The test
counts the acks itself with its own MQTT subscriber on `node/+/ack` (and reads the durations from
the retained playlists), independent of the daemon's journal, then runs the real CLI and
compares every figure per hamlet and the minutes aired per category.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest
from support.e2e import wait_for, write_commune

from broadcastd.node.player import PlayerError
from broadcastd.transport.credentials import Credentials

if TYPE_CHECKING:
    from broadcastd.config import Config

BIN = Path(sys.executable).parent
ABSENT = ("h00-n0", "h00-n1")
BROKEN = "h01-n0"
CRASHES_AFTER_READY = "h02-n1"
READY = {"ready", "playing", "played"}
FAILED = {"failed", "rejected", "expired"}


class BrokenAmplifier:
    """A speaker whose player fails on every clip."""

    plays: list[tuple[str, str, float]] = []  # noqa: RUF012 - Fleet.plays_of reads it; never filled

    async def play(self, path: Path, volume: int, **_: object) -> None:
        raise PlayerError(f"amplifier fault playing {path.name} at volume {volume}")


class Observer:
    """What the agents actually sent and what the daemon retained, seen on the broker."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.acks: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.playlists: dict[str, dict[str, object]] = {}  # hamlet -> envelope

    async def run(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parts = str(message.topic).removeprefix(self.root + "/").split("/")
            if not isinstance(message.payload, bytes) or not message.payload:
                continue
            doc = json.loads(message.payload)
            if parts[0] == "node" and parts[2] == "ack":
                self.acks[doc["playlist"]][parts[1]].add(doc["status"])
            elif parts[0] == "hamlet" and parts[2] == "playlist":
                self.playlists[parts[1]] = doc

    def count(self, status: str) -> int:
        return sum(status in s for by_node in self.acks.values() for s in by_node.values())


def expected_figures(
    config: Config, seen: Observer
) -> tuple[dict[str, dict[str, object]], dict[str, float]]:
    """Per hamlet and per category, from the observed acks and envelopes only."""
    categories = {a.id: a.category for a in config.announcements}
    rows: dict[str, dict[str, object]] = {}
    minutes: dict[str, float] = defaultdict(float)
    for hamlet in config.hamlets:
        envelope = seen.playlists[hamlet.id]
        by_node = seen.acks[str(envelope["id"])]
        statuses = {n.id: by_node.get(n.id, set()) for n in hamlet.nodes}
        played = {n for n, s in statuses.items() if "played" in s}
        reached = sum(n.households for n in hamlet.nodes if n.id in played)
        rows[hamlet.id] = {
            "playlists": [envelope["id"]],
            "nodes": len(hamlet.nodes),
            "ready": sum(1 for s in statuses.values() if s & READY),
            "played": len(played),
            "failed": sum(1 for n, s in statuses.items() if n not in played and s & FAILED),
            "offline": sum(1 for s in statuses.values() if not s),
            "households_reached": reached,
            "households": hamlet.households,
            "target_met": reached >= 0.8 * hamlet.households,
        }
        if played:
            for item in envelope["items"]:  # type: ignore[attr-defined]
                minutes[categories[item["announcement"]]] += item["duration_ms"] / 60000
    return rows, dict(minutes)


async def test_report_json_figures_equal_the_acks_the_agents_sent(tmp_path):
    e2e = write_commune(tmp_path, hamlets=10, nodes_per_hamlet=2, play_in=12.0)
    commune = e2e.config.commune.id
    root = f"bcast/v1/{commune}"
    host, port = e2e.config.broker.listen.rsplit(":", 1)
    user, password = Credentials.load_or_create(e2e.config).monitor  # the daemon's stays up
    seen = Observer(root)
    async with e2e.running(fleet=False) as run:
        daemon = run.daemon
        async with aiomqtt.Client(
            host, int(port), username=user, password=password, protocol=aiomqtt.ProtocolVersion.V5,
            identifier=f"report-observer-{os.getpid()}",
        ) as client:  # fmt: skip
            await client.subscribe(f"{root}/node/+/ack", qos=1)
            await client.subscribe(f"{root}/hamlet/+/playlist", qos=1)
            observer = run.tasks.create_task(seen.run(client))
            fleet = e2e.fleet(nodes=[n for n in e2e.node_ids if n not in ABSENT])
            fleet.agents[BROKEN].player = BrokenAmplifier()  # type: ignore[assignment]
            run.start(fleet)
            await wait_for(
                lambda: any(CRASHES_AFTER_READY in by and "ready" in by[CRASHES_AFTER_READY]
                            for by in seen.acks.values()),
                20, f"{CRASHES_AFTER_READY} ready",
            )  # fmt: skip
            crashed = fleet.agents[CRASHES_AFTER_READY].task
            assert crashed is not None
            crashed.cancel()  # before play_at: it never plays
            await wait_for(
                lambda: seen.count("played") == 16 and seen.count("failed") == 1,
                40, "16 played acks and 1 failed ack on the broker",
            )  # fmt: skip
            await asyncio.sleep(1.0)  # a late or duplicate ack would show up here
            await daemon.journal.flush()
            observer.cancel()
        day = e2e.play_at.date().isoformat()
        proc = await asyncio.create_subprocess_exec(
            BIN / "broadcastd", "report", "--json", "--date", day, "-c", e2e.config_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)

    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    expected, minutes = expected_figures(e2e.config, seen)
    rows = {r["hamlet"]: r for r in report["rows"] if r["slot"] == "noon"}
    assert sorted(rows) == sorted(expected)
    for hamlet, want in expected.items():
        got = {k: rows[hamlet][k] for k in want}
        assert got == want, hamlet
        assert rows[hamlet]["status"] == "live"
    assert report["minutes"]["live"] == {c: pytest.approx(m, abs=0.006) for c, m in minutes.items()}
    # The faults show: these are not trivially 100%.
    assert expected["h00"]["offline"] == 2
    assert expected["h00"]["target_met"] is False
    assert (expected["h01"]["failed"], expected["h01"]["played"]) == (1, 1)
    assert (expected["h02"]["ready"], expected["h02"]["played"]) == (2, 1)
    assert sum(bool(r["target_met"]) for r in expected.values()) == 7
