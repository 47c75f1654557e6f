"""Issue 20: a node bundle carries the commune's trust, and a speaker speaks only TLS beyond
loopback. Real `broadcastd node-config`, real `broadcastd-node` processes, the daemon's embedded
mosquitto with its TLS listener (certificate for `localhost`); nothing leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from support.e2e import E2E, wait_for, write_commune

from broadcastd.transport import pki

NODE = "h00-n0"
BIN = Path(sys.executable).parent


def bundle(e2e: E2E, out: Path, node: str = NODE) -> Path:
    made = subprocess.run(
        [BIN / "broadcastd", "node-config", node, "-c", e2e.config_path, "--out", out,
         "--cache-dir", "cache"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return out / "node.yaml"


def edit(node_yaml: Path, **broker: object) -> None:
    doc = yaml.safe_load(node_yaml.read_text(encoding="utf-8"))
    doc["broker"].update(broker)
    node_yaml.write_text(yaml.safe_dump(doc), encoding="utf-8")


def start_node(node_yaml: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as logf:
        return subprocess.Popen(
            [BIN / "broadcastd-node", "-c", node_yaml],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SDL_AUDIODRIVER": "dummy"},
        )


async def stop_node(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(proc.wait, 10)
    text = await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace")
    assert code == 0, text[-2000:]


async def plays_a_slot(e2e: E2E, config: Path, log: Path) -> str:
    """Run the daemon and a `broadcastd-node` on the bundle `config` until the node has played a
    slot dispatched now; the node's log."""
    async with e2e.running(fleet=False, clock=time.time, scheduling=False) as run:
        daemon = run.daemon
        node = start_node(config, log)
        try:
            await wait_for(lambda: daemon.registry.state(NODE) == "online", 20, "node online")
            play_at = dt.datetime.now(tz=e2e.config.commune.tz) + dt.timedelta(seconds=3)
            published = await daemon.dispatcher.dispatch_slot(
                e2e.play_at.date(), "noon", reason="bundle test", play_at=play_at
            )
            pid = published[0].playlist

            def played() -> bool:
                return any(a.status == "played" for a in daemon.journal.acks_for(pid))

            await wait_for(played, 30, f"{NODE} to ack played")
        finally:
            await stop_node(node, log)
    return await asyncio.to_thread(log.read_text, encoding="utf-8")


async def test_a_bundle_connects_over_tls_and_plays_a_slot(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, texts=("Xin chào.",), tls=True)
    config = bundle(e2e, tmp_path / "bundle")
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    public = e2e.config.broker.public
    assert public is not None
    assert doc["broker"]["url"] == f"mqtts://localhost:{public.port}"
    assert doc["broker"]["ca_file"] == "ca.crt"
    ca = pki.TlsFiles.for_config(e2e.config).ca_cert
    assert (tmp_path / "bundle" / "ca.crt").read_bytes() == ca.read_bytes()
    assert b"PRIVATE KEY" not in b"".join(p.read_bytes() for p in (tmp_path / "bundle").iterdir())
    text = await plays_a_slot(e2e, config, tmp_path / "node.log")
    assert f"connected to mqtts://localhost:{public.port}" in text
    assert "in clear" not in text


async def test_a_bundle_for_secure_websockets_plays_a_slot(tmp_path):
    # For carriers that block 8883: the same logins, ACL and certificate on a wss:// listener.
    e2e = write_commune(
        tmp_path, hamlets=1, nodes_per_hamlet=1, texts=("Xin chào.",), tls=True, websockets=True
    )
    public = e2e.config.broker.public
    assert public is not None
    config = bundle(e2e, tmp_path / "bundle")
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert (
        doc["broker"]["url"]
        == public.websockets_url
        == f"wss://localhost:{public.websockets_port}/mqtt"
    )
    assert doc["broker"]["ca_file"] == "ca.crt"
    text = await plays_a_slot(e2e, config, tmp_path / "node.log")
    assert f"connected to {public.websockets_url}" in text


async def test_a_wrong_ca_or_host_name_never_connects(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=2, tls=True)
    other = write_commune(tmp_path / "other", hamlets=1, nodes_per_hamlet=1, tls=True)
    public = e2e.config.broker.public
    assert public is not None
    wrong_ca = bundle(e2e, tmp_path / "wrong-ca")
    (tmp_path / "wrong-ca" / "ca.crt").write_bytes(
        pki.TlsFiles.for_config(other.config).ca_cert.read_bytes()
    )
    wrong_host = bundle(e2e, tmp_path / "wrong-host", "h00-n1")
    edit(wrong_host, url=f"mqtts://127.0.0.1:{public.port}")  # not a name the certificate has
    logs = [tmp_path / "wrong-ca.log", tmp_path / "wrong-host.log"]
    async with e2e.running(fleet=False, scheduling=False) as run:
        nodes = [start_node(c, log) for c, log in zip((wrong_ca, wrong_host), logs, strict=True)]
        try:

            def both_refused() -> bool:
                return all(
                    "TLS: the broker's certificate was refused" in log.read_text() for log in logs
                )

            await wait_for(both_refused, 20, "both nodes to log the refused certificate")
            assert run.daemon.registry.state(NODE) != "online"
            assert run.daemon.registry.state("h00-n1") != "online"
        finally:
            for node, log in zip(nodes, logs, strict=True):
                await stop_node(node, log)
    assert "certificate verify failed" in logs[0].read_text()
    assert (
        "Hostname mismatch" in logs[1].read_text() or "IP address mismatch" in logs[1].read_text()
    )


def test_plain_mqtt_beyond_loopback_refuses_to_start_with_one_line(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1)
    config = bundle(e2e, tmp_path / "bundle")
    # A documentation address: the agent must refuse before it ever tries to connect.
    edit(config, url="mqtt://192.0.2.7:1883")
    done = subprocess.run(
        [BIN / "broadcastd-node", "-c", config], capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert done.returncode == 78
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"{config}:")
    assert ":3:8: broker.url: plain MQTT to a broker beyond loopback would send" in line
    assert "broker.insecure_plaintext: true" in line
    assert "Traceback" not in done.stderr
