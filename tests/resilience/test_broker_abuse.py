"""The broker as the first line of defence: the full ACL matrix of a small commune, anonymous
clients refused, a 10 MB publish refused, and a daemon whose memory does not grow under abuse."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest
from support.daemon_main import read_log, spawn, wait_log
from support.e2e import wait_for, write_commune
from support.mqtt import link_as
from support.scrape import sample_sum, scrape, with_metrics
from support.soak import count

from broadcastd import protocol
from broadcastd.transport.broker import free_port
from broadcastd.transport.credentials import Credentials

if TYPE_CHECKING:
    from broadcastd.transport.broker import MosquittoProcess

TEN_MB = 10 * 1024 * 1024
BATCH = 200  # bad messages the daemon may have queued at once in the memory test


@pytest.fixture
def commune(tmp_path, secured_broker):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=600.0)
    broker, creds = secured_broker(e2e.config, persistence=False)
    return e2e, broker, creds


async def test_acl_matrix_no_node_writes_another_nodes_or_controller_topics(
    commune, new_inbox, run_link
):
    e2e, broker, creds = commune
    topics = protocol.Topics(e2e.config.commune.id)
    nodes = e2e.node_ids
    hamlets = [h.id for h in e2e.config.hamlets]
    controller_only = [
        topics.controller_state(),
        *(topics.playlist(h) for h in hamlets),
        *(topics.control(h) for h in hamlets),
        topics.audio("ab" * 32, 0),
    ]
    seen = new_inbox()
    attempts = 0
    barriers: dict[str, int] = dict.fromkeys(nodes, 0)
    async with run_link(link_as(broker, *creds.controller, seen, f"{topics.root}/#")):
        for a, b in itertools.permutations(nodes, 2):
            forged = [topics.node_state(b), topics.node_heartbeat(b), topics.node_ack(b)]
            link = link_as(broker, a, creds.password(a), new_inbox())
            async with run_link(link):
                for topic in [*forged, *controller_only]:
                    await link.publish(topic, f"forged by {a}".encode(), retain=True)
                    attempts += 1
                # Messages of one client arrive in order: with the barrier in, any denied one
                # that got through would already be in as well.
                await link.publish(topics.node_heartbeat(a), f"barrier {a}->{b}".encode())
                barriers[a] += 1
                await seen.wait_for(topics.node_heartbeat(a), count=barriers[a])
    got = [(t, p) for t, p, _ in seen.messages]
    assert all(p.startswith(b"barrier") for _, p in got), [x for x in got if b"forged" in x[1]]
    assert len(got) == len(nodes) * (len(nodes) - 1)
    assert attempts == len(nodes) * (len(nodes) - 1) * (3 + len(controller_only))


@pytest.mark.parametrize(
    "auth",
    [{}, {"username": "h00-n0", "password": "wrong"}, {"username": "nobody", "password": "x"}],
    ids=["anonymous", "wrong-password", "unknown-user"],
)
async def test_clients_without_valid_credentials_are_refused(commune, auth):
    _, broker, _ = commune
    with pytest.raises(aiomqtt.MqttCodeError):
        async with aiomqtt.Client(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5, timeout=5, **auth
        ):
            pass


async def test_ten_megabyte_publish_is_refused_by_the_broker(
    commune, new_inbox, run_link, tmp_path
):
    e2e, broker, creds = commune
    topics = protocol.Topics(e2e.config.commune.id)
    node = e2e.node_ids[0]
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * TEN_MB)
    seen = new_inbox()
    async with run_link(link_as(broker, *creds.controller, seen, f"{topics.root}/#")):
        # MQTT 3.1.1, so the client cannot know the limit: the broker itself must refuse it.
        result = await asyncio.to_thread(
            subprocess.run,
            ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv311",
             "-u", node, "-P", creds.password(node), "-q", "1",
             "-t", topics.node_heartbeat(node), "-f", str(big)],
            capture_output=True,
            timeout=30,
            check=False,
        )  # fmt: skip
        node_link = link_as(broker, node, creds.password(node), new_inbox())
        async with run_link(node_link):
            await node_link.publish(topics.node_ack(node), b"barrier")
            await seen.wait_for(topics.node_ack(node))
    assert [len(p) for t, p, _ in seen.messages] == [len(b"barrier")], result
    assert "closed" in read_log_of(broker) or result.returncode != 0


def read_log_of(broker: MosquittoProcess) -> str:
    try:
        return broker.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _refused(port: int, **labels: str) -> float:
    return sample_sum(scrape(port), "broadcastd_bad_messages_total", **labels)


async def test_daemon_memory_does_not_grow_under_oversize_and_bad_messages(tmp_path):
    """A leak test, not a backlog test: the flood goes in batches, each handled by the daemon (its
    refusal counter reaches the number sent) before the next, so its queues never hold more than
    a batch whatever the machine's load; and the growth measured is that across a second flood
    identical to the first, which has already taken the allocator to its working size."""
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=600.0, texts=("Alô.",))
    port = free_port()
    e2e.config_path.write_text(
        with_metrics(e2e.config_path.read_text(encoding="utf-8"), port), encoding="utf-8"
    )
    log = tmp_path / "daemon.log"
    proc = spawn(e2e.config_path, e2e.offset, log, "--metrics")
    try:
        await wait_log(log, "broadcastd running", proc, 30)
        creds = Credentials.load_or_create(e2e.config)
        host, _, broker_port = e2e.config.broker.listen.rpartition(":")
        topics = protocol.Topics(e2e.config.commune.id)
        node = e2e.node_ids[0]
        big = tmp_path / "big.bin"
        big.write_bytes(b"\1" * TEN_MB)
        n_bad, n_big = count(4000, 20000), count(3, 10)

        async def handled(total: float) -> None:
            await wait_for(
                lambda: _refused(port) >= total, 300, f"the daemon to count {total:.0f} refusals"
            )

        async def flood() -> None:
            counted = await asyncio.to_thread(_refused, port)
            async with aiomqtt.Client(
                host, int(broker_port), username=node, password=creds.password(node),
                protocol=aiomqtt.ProtocolVersion.V5,
            ) as client:  # fmt: skip
                for first in range(0, n_bad, BATCH):
                    batch = range(first, min(first + BATCH, n_bad))
                    for i in batch:
                        kind = ("heartbeat", "state", "ack")[i % 3]
                        payload = (b"{" * (i % 50)) + bytes([i % 256]) * (i % 3000)
                        await client.publish(f"{topics.root}/node/{node}/{kind}", payload, qos=1)
                    counted += len(batch)  # each one refused: malformed, or over the rate limit
                    await handled(counted)
            for _ in range(n_big):  # refused by the broker: they never reach the daemon
                await asyncio.to_thread(
                    subprocess.run,
                    ["mosquitto_pub", "-h", host, "-p", broker_port, "-V", "mqttv311", "-u", node,
                     "-P", creds.password(node), "-t", topics.node_heartbeat(node), "-f", str(big)],
                    capture_output=True, timeout=30, check=False,
                )  # fmt: skip

        await flood()  # warm-up: allocator arenas, metric children, logging caches
        before = _rss_kib(proc.pid)
        await flood()
        after = _rss_kib(proc.pid)
        assert proc.poll() is None, read_log(log)[-3000:]
        print(f"daemon RSS {before} KiB -> {after} KiB across a second bad/oversize flood")
        assert "message ignored" in read_log(log), "the bad messages reached the daemon"
        assert after - before < 8 * 1024, f"daemon RSS grew {before} -> {after} KiB"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 15)
    assert proc.returncode == 0, read_log(log)[-3000:]
