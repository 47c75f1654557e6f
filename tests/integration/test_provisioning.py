"""Provisioning a speaker is one command: `broadcastd node-config` output runs `broadcastd-node`.

Real processes end to end: the `broadcastd node-config` CLI writes node.yaml + password, a real
`broadcastd-node -c DIR/node.yaml` process connects to the daemon's embedded mosquitto with the
generated credentials (the ACL applies), heartbeats, verifies a signed playlist and plays it with
the default player from node.yaml (ffplay; SDL's dummy audio driver stands in for a sound card).
The only option beyond the defaults is `--cache-dir`, because the default /var/lib/broadcastd-node
is not writable in a test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml
from support.e2e import wait_for, write_commune

from broadcastd import protocol

NODE = "h00-n0"
BIN = Path(sys.executable).parent


async def test_node_config_output_used_as_is_connects_heartbeats_and_plays(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, texts=("Xin chào bà con.",))
    # Real time on both sides: the node process has no shifted clock, so neither has the daemon;
    # no scheduler either, the test dispatches the slot itself a few seconds ahead.
    out = tmp_path / "provision"
    async with e2e.running(fleet=False, clock=time.time, scheduling=False) as run:
        daemon = run.daemon
        made = await asyncio.to_thread(
            subprocess.run,
            [BIN / "broadcastd", "node-config", NODE, "-c", e2e.config_path, "--out", out,
             "--cache-dir", out / "cache"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        doc = yaml.safe_load((out / "node.yaml").read_text(encoding="utf-8"))
        assert doc["node"] == {"id": NODE, "hamlet": "h00", "commune": "test-commune"}
        assert doc["broker"]["url"] == f"mqtt://{e2e.config.broker.listen}"
        assert (out / "password").stat().st_mode & 0o777 == 0o600
        assert (out / "node.yaml").stat().st_mode & 0o777 == 0o600
        log = tmp_path / "node.log"
        with log.open("wb") as logf:
            node = subprocess.Popen(  # noqa: ASYNC220 - starting it is instant; waits are awaited
                [BIN / "broadcastd-node", "-c", out / "node.yaml"],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env={**os.environ, "SDL_AUDIODRIVER": "dummy"},
            )
        try:
            await wait_for(lambda: daemon.registry.state(NODE) == "online", 20, "node online")
            seen = {v.node: v.last_seen for v in daemon.registry.snapshot()}[NODE]

            def heartbeat_after_connect() -> bool:
                return {v.node: v.last_seen for v in daemon.registry.snapshot()}[NODE] != seen

            await wait_for(heartbeat_after_connect, 10, "a heartbeat from the node")
            play_at = dt.datetime.now(tz=e2e.config.commune.tz) + dt.timedelta(seconds=4)
            published = await daemon.dispatcher.dispatch_slot(
                e2e.play_at.date(), "noon", reason="provisioning test", play_at=play_at
            )
            assert len(published) == 1
            pid = published[0].playlist

            def statuses() -> list[str]:
                return [a.status for a in daemon.journal.acks_for(pid) if a.node == NODE]

            await wait_for(lambda: "played" in statuses(), 30, f"{NODE} to ack played")
            assert statuses().index("ready") < statuses().index("playing")
            assert statuses().count("played") == 1
        finally:
            node.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(node.wait, 10)
        assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-2000:]


async def _provision(e2e, node: str, how: str, scratch: Path, elsewhere: Path) -> Path:
    """A bundle made where the technician made it, then moved (or unpacked) to `elsewhere`."""
    made_at = scratch / (f"{node}.tar.gz" if how == "--tar" else node)
    # A relative cache_dir is relative to node.yaml, so it moves with the bundle too.
    made = await asyncio.to_thread(
        subprocess.run,
        [BIN / "broadcastd", "node-config", node, "-c", e2e.config_path, how, made_at,
         "--cache-dir", "cache"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    if how == "--tar":
        with tarfile.open(made_at) as tar:
            tar.extractall(elsewhere, filter="data")
    else:
        elsewhere.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(made_at, elsewhere)
    shutil.rmtree(scratch)  # nothing may still point back at where it was made
    assert (elsewhere / "password").stat().st_mode & 0o777 == 0o600
    return elsewhere / "node.yaml"


async def test_a_bundle_moved_or_unpacked_elsewhere_logs_in_and_plays(tmp_path):
    """Issue 17 item 3: every path in node.yaml is relative to it, so `--out DIR` moved to another
    directory and `--tar FILE` unpacked elsewhere both run a node that plays a slot."""
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=2, texts=("Xin chào bà con.",))
    daemon = e2e.daemon(clock=time.time, scheduling=False)
    nodes = {"h00-n0": "--out", "h00-n1": "--tar"}
    async with asyncio.TaskGroup() as tg:
        daemon_task = tg.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 20)
        configs = [
            await _provision(
                e2e, node, how, tmp_path / f"made-{node}", tmp_path / "speakers" / node
            )
            for node, how in nodes.items()
        ]
        logs = [tmp_path / f"{node}.log" for node in nodes]
        procs = []
        for config, log in zip(configs, logs, strict=True):
            with log.open("wb") as logf:
                procs.append(
                    subprocess.Popen(  # noqa: ASYNC220 - starting it is instant; waits are awaited
                        [BIN / "broadcastd-node", "-c", config],
                        stdout=logf,
                        stderr=subprocess.STDOUT,
                        cwd="/",  # not the bundle: a relative path must not resolve by luck
                        env={**os.environ, "SDL_AUDIODRIVER": "dummy"},
                    )
                )
        try:
            for node in nodes:

                def online(n: str = node) -> bool:
                    return bool(daemon.registry.state(n) == "online")

                await wait_for(online, 20, node)
            play_at = dt.datetime.now(tz=e2e.config.commune.tz) + dt.timedelta(seconds=4)
            published = await daemon.dispatcher.dispatch_slot(
                e2e.play_at.date(), "noon", reason="provisioning test", play_at=play_at
            )
            pid = published[0].playlist

            def played() -> set[str]:
                return {a.node for a in daemon.journal.acks_for(pid) if a.status == "played"}

            await wait_for(lambda: played() == set(nodes), 30, "both moved bundles to play")
            for node in nodes:
                assert (tmp_path / "speakers" / node / "cache").is_dir()
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            codes = [await asyncio.to_thread(proc.wait, 10) for proc in procs]
        for code, log in zip(codes, logs, strict=True):
            assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-2000:]
        daemon.request_stop()
        await daemon_task


def _pub_state(url: str, user: str, password: str, topic: str) -> subprocess.CompletedProcess[str]:
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    payload = protocol.state_payload("online", int(time.time())).decode()
    return subprocess.run(
        ["mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-u", user, "-P", password,
         "-t", topic, "-m", payload, "-q", "1"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip


async def test_a_node_added_by_a_reload_can_connect_without_a_restart(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, texts=("Xin chào.",))
    async with e2e.running(fleet=False, scheduling=False) as run:
        daemon = run.daemon
        text = e2e.config_path.read_text(encoding="utf-8")
        text = text.replace("    households: 10\n", "    households: 20\n")
        text = text.replace("{id: h00-n0, households: 10}", "{id: h00-n0, households: 10}, "
                            "{id: h00-n9, households: 10}")  # fmt: skip
        e2e.config_path.write_text(text, encoding="utf-8")
        cmd: list[str | Path] = [BIN / "broadcastd", "node-config", "h00-n9", "-c", e2e.config_path]
        made = await asyncio.to_thread(
            subprocess.run,
            cmd,
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        broker = yaml.safe_load(made.stdout)["broker"]
        topic = "bcast/v1/test-commune/node/h00-n9/state"
        refused = await asyncio.to_thread(
            _pub_state, broker["url"], "h00-n9", broker["password"], topic
        )
        assert refused.returncode != 0  # the running broker does not know it yet
        assert await daemon.reload()
        accepted = await asyncio.to_thread(
            _pub_state, broker["url"], "h00-n9", broker["password"], topic
        )
        assert accepted.returncode == 0, accepted.stderr
        await wait_for(lambda: daemon.registry.state("h00-n9") == "online", 10, "new node online")
