"""The console beside a running daemon and fleet, over real HTTP: the issue's acceptance 2 (an
operator added with the CLI logs in with a form POST and sees every hamlet; a CLI token reads
/api/v1/status) and live updates over Server-Sent Events when a speaker dies."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import TYPE_CHECKING, Any

import httpx
from support import console as cs
from support.e2e import wait_for, write_commune

from broadcastd.cli.main import run as broadcastd

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from broadcastd.console import Console

OFFLINE_WITHIN_S = 10.0


async def states(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The `state` events of a live stream, parsed."""
    event = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "state":
            yield json.loads(line.removeprefix("data: "))


async def test_cli_operator_logs_in_sees_every_hamlet_and_a_token_reads_status(
    tmp_path, monkeypatch, capsys
):
    e2e = write_commune(tmp_path, hamlets=3, nodes_per_hamlet=2, play_in=600.0)
    config = str(e2e.config_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{cs.PASSWORD}\n"))
    assert broadcastd(["operator", "add", "van-hoa", "--role", "viewer", "-c", config]) == 0
    assert broadcastd(["token", "create", "district", "--scope", "read", "-c", config]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    ctx: Console = cs.build(e2e.config_path, clock=e2e.clock)
    async with e2e.running() as run, cs.served(ctx) as base:
        await wait_for(
            lambda: all(run.daemon.registry.state(n) == "online" for n in e2e.node_ids),
            20,
            "every speaker online",
        )
        async with httpx.AsyncClient(base_url=base) as http:
            form = await http.get("/login")
            posted = await http.post(
                "/login",
                data={
                    "username": "van-hoa",
                    "password": cs.PASSWORD,
                    "csrf": cs.csrf_of(form.text),
                },
            )
            assert posted.status_code == 303
            home = await http.get("/")
            assert home.status_code == 200
            for hamlet in e2e.config.hamlets:
                assert f">{hamlet.name}</a></h2>" in home.text
            assert 'id="daemon-down" class="banner danger" hidden' in home.text

            status = await http.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
        assert status.status_code == 200
        body = status.json()
        assert body["daemon"]["running"] is True
        assert [
            {k: h[k] for k in ("id", "name", "nodes_online", "nodes_total")}
            for h in body["hamlets"]
        ] == [
            {"id": h.id, "name": h.name, "nodes_online": 2, "nodes_total": 2}
            for h in e2e.config.hamlets
        ]
    ctx.close()


async def test_a_killed_speaker_goes_offline_on_the_live_stream_within_seconds(tmp_path):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=600.0)
    victim = e2e.node_ids[-1]
    ctx: Console = cs.build(e2e.config_path, clock=e2e.clock)
    cs.add_operator(ctx, "van-hoa")
    others = [n for n in e2e.node_ids if n != victim]
    async with e2e.running(fleet={"nodes": others}) as run, cs.served(ctx) as base:
        lone = run.start(e2e.fleet(nodes=[victim]))
        await wait_for(lambda: run.daemon.registry.state(victim) == "online", 20, "victim online")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            assert (await cs.login(http, "van-hoa")).status_code == 303
            async with http.stream("GET", "/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                seen = states(stream)
                first = await anext(seen)
                assert first["daemon"]["running"] is True
                assert {n["node"]: n["state"] for n in first["nodes"]}[victim] == "online"
                lone.cancel()  # a power cut: no goodbye
                killed = time.monotonic()
                async with asyncio.timeout(OFFLINE_WITHIN_S):
                    async for state in seen:
                        if {n["node"]: n["state"] for n in state["nodes"]}[victim] == "offline":
                            break
                took = time.monotonic() - killed
                hamlet = next(
                    h for h in state["hamlets"] if h["id"] == e2e.config.node_hamlets()[victim].id
                )
                assert hamlet["nodes_offline"] == 1
    print(f"speaker offline on the live stream {took:.1f}s after its power cut")
    ctx.close()
