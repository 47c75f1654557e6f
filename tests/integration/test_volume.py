"""Issue 17.5 through the real chain: `broadcastd volume` reaches the speakers it names, and
playlists carry the hamlet's scheduled level and `emergency.volume`.

Daemon, embedded mosquitto, reference agents and the real CLI: a signed volume control for a
hamlet or for single speakers, journaled with who asked, acked by each speaker, reported back in
its heartbeats and applied to what it plays next, unless that is an emergency.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import TYPE_CHECKING

from support.e2e import wait_for, write_commune

from broadcastd import cli
from broadcastd.config import load_config

if TYPE_CHECKING:
    from support.e2e import E2E, Running


async def cli_run(e2e: E2E, *argv: str) -> int:
    return await asyncio.to_thread(cli.run, [*argv, "-c", str(e2e.config_path)])


async def test_volume_for_a_hamlet_and_a_node_is_acked_reported_and_heard(tmp_path, capsys):
    e2e = write_commune(
        tmp_path,
        hamlets=2,
        nodes_per_hamlet=2,
        play_in=600,  # the daily bulletin stays out of the way
        extra=("emergency:", "  approvals: 2", "  operators: [an, binh]", "  volume: 95"),
    )
    # h01 plays at 70 all day; h00 has no schedule, so its speakers play at their own level.
    text = e2e.config_path.read_text(encoding="utf-8")
    e2e.config_path.write_text(
        text.replace("    nodes: [{id: h01-n0", "    volume: 70\n    nodes: [{id: h01-n0"),
        encoding="utf-8",
    )
    e2e.config = load_config(e2e.config_path).config
    expected = {"h00-n0": 60, "h00-n1": 60, "h01-n0": 80, "h01-n1": 30}
    async with e2e.running() as run:
        daemon, fleet = run.daemon, run.fleet
        await wait_for(
            lambda: all(daemon.registry.state(n) == "online" for n in e2e.node_ids),
            20,
            "every speaker online",
        )
        capsys.readouterr()
        assert await cli_run(e2e, "volume", "150") == 2
        assert "must be a whole number from 0 to 100, got: '150'" in capsys.readouterr().err
        assert await cli_run(e2e, "volume", "60", "--hamlets", "h00") == 1
        assert "volume needs --operator NAME" in capsys.readouterr().err

        assert await cli_run(e2e, "volume", "60", "--hamlets", "h00", "--operator", "an") == 0
        hamlet = json.loads(capsys.readouterr().out)
        assert hamlet["acked"] == ["h00-n0", "h00-n1"]
        assert (hamlet["not_acked"], hamlet["offline"]) == ([], [])
        assert await cli_run(e2e, "volume", "30", "--nodes", "h01-n1", "--operator", "binh") == 0
        node = json.loads(capsys.readouterr().out)
        assert (node["hamlets"], node["acked"]) == (["h01"], ["h01-n1"])

        def reported() -> dict[str, int | None]:
            return {v.node: v.volume for v in daemon.registry.snapshot()}

        await wait_for(lambda: reported() == expected, 10, "heartbeats reporting the new levels")

        def heard(count: int) -> dict[str, int] | None:
            done = all(len(sim.player.finished) >= count for sim in fleet.agents.values())
            return {n: s.player.volumes[-1] for n, s in fleet.agents.items()} if done else None

        assert await cli_run(e2e, "announce", "--now", "--text", "Họp thôn") == 0
        await wait_for(lambda: heard(1), 30, "every speaker to play the announcement")
        # h01-n0 at its hamlet's scheduled 70; h01-n1 at the 30 set after that level began
        assert heard(1) == expected | {"h01-n0": 70}

        capsys.readouterr()
        flood = ["announce", "--now", "--priority", "emergency", "--text", "Lũ quét"]
        assert await cli_run(e2e, *flood, "--operator", "an") == 0
        request = json.loads(capsys.readouterr().out)["request"]
        assert await cli_run(e2e, "approve", request, "--operator", "binh") == 0
        await wait_for(lambda: heard(2), 30, "every speaker to play the emergency")
        assert heard(2) == dict.fromkeys(expected, 95)  # whatever anyone set

    conn = sqlite3.connect(e2e.config.state_dir / "journal.sqlite3")
    events = [
        json.loads(d) for (d,) in conn.execute("SELECT detail FROM events WHERE kind='volume'")
    ]
    acks = conn.execute(
        "SELECT playlist, node, detail FROM acks"
        " WHERE status='received' AND playlist LIKE 'volume-%'"
    ).fetchall()
    conn.close()
    assert [(e["level"], e["operator"], e["nodes"]) for e in events] == [
        (60, "an", None),
        (30, "binh", ["h01-n1"]),
    ]
    assert sorted((node, detail) for _, node, detail in acks) == [
        ("h00-n0", "volume 60"),
        ("h00-n1", "volume 60"),
        ("h01-n1", "volume 30"),
    ]


async def test_an_operators_volume_schedule_holds_across_a_restart_until_put_back(tmp_path, capsys):
    """`broadcastd volume-schedule`: h01 plays at 70 by its config; an operator sets 35 from
    midnight on for it, and every playlist made from then on carries 35, after a restart too
    (the journal keeps it); `--configured` puts the config's 70 back. h00 is untouched."""
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=1, play_in=600)
    text = e2e.config_path.read_text(encoding="utf-8")
    e2e.config_path.write_text(
        text.replace("    nodes: [{id: h01-n0", "    volume: 70\n    nodes: [{id: h01-n0"),
        encoding="utf-8",
    )
    e2e.config = load_config(e2e.config_path).config

    async def announce(run: Running, text: str) -> dict[str, int | None]:
        """The level each hamlet's playlist of a new announcement carries."""
        capsys.readouterr()
        assert await cli_run(e2e, "announce", "--now", "--text", text) == 0
        playlists = json.loads(capsys.readouterr().out)["playlists"]
        rows = [run.daemon.journal.dispatch(p) for p in playlists]
        return {r.hamlet: json.loads(r.envelope).get("volume") for r in rows if r is not None}

    async with e2e.running(fleet=False) as run:
        assert await announce(run, "Họp thôn") == {"h00": None, "h01": 70}
        capsys.readouterr()
        # refused before it is sent, with the daemon's own check: a usage error
        assert await cli_run(e2e, "volume-schedule", "25:00=35", "--hamlets", "h01") == 2
        assert "a time of day is HH:MM, got: '25:00'" in capsys.readouterr().err
        argv = ["volume-schedule", "00:00=35", "--hamlets", "h01", "--operator", "an"]
        assert await cli_run(e2e, *argv) == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer["in_force"] == {"h01": {"00:00": 35}}
        assert await announce(run, "Tiêm phòng") == {"h00": None, "h01": 35}
    async with e2e.running(fleet=False) as run:
        assert await announce(run, "Phòng rét") == {"h00": None, "h01": 35}
        assert await cli_run(e2e, "volume-schedule", "--configured", "--hamlets", "h01") == 0
        assert json.loads(capsys.readouterr().out)["in_force"] == {"h01": {"00:00": 70}}
        assert await announce(run, "Họp chợ") == {"h00": None, "h01": 70}
    conn = sqlite3.connect(e2e.config.state_dir / "journal.sqlite3")
    events = [
        json.loads(d)
        for (d,) in conn.execute("SELECT detail FROM events WHERE kind='volume_schedule'")
    ]
    conn.close()
    assert [(e["hamlets"], e["schedule"], e["operator"]) for e in events] == [
        (["h01"], {"00:00": 35}, "an"),
        (["h01"], None, None),
    ]
