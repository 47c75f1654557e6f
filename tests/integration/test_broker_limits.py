"""The generated broker limits, on a real mosquitto: a payload over a chunk is dropped while its
sender stays connected, connections past `max_connections` are refused and logged, and a refused
login shows in the broker's log (the file the daemon keeps in `state_dir/broker/`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from typing import TYPE_CHECKING

import aiomqtt
import pytest
from support.e2e import wait_for, write_commune
from support.mqtt import link_as

from broadcastd import protocol
from broadcastd.transport.brokerconf import MAX_PAYLOAD

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.transport.broker import MosquittoProcess


def broker_log(broker: MosquittoProcess) -> str:
    try:
        return broker.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


@pytest.fixture
def commune(tmp_path, secured_broker):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=2, play_in=600.0)
    broker, creds = secured_broker(e2e.config, persistence=False)
    return e2e, broker, creds


async def mosquitto_pub(broker: MosquittoProcess, user: str, password: str, *args: str) -> str:
    result = await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_pub", "-d", "-h", broker.host, "-p", str(broker.port), "-u", user,
         "-P", password, "-q", "1", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return result.stdout + result.stderr


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
async def test_a_payload_over_a_chunk_is_dropped_and_its_sender_stays(
    commune, new_inbox, run_link, tmp_path: Path, version
):
    e2e, broker, creds = commune
    topics = protocol.Topics(e2e.config.commune.id)
    node = e2e.node_ids[0]
    over, fits = tmp_path / "over.bin", tmp_path / "fits.bin"
    over.write_bytes(b"\1" * (MAX_PAYLOAD + 1))  # under max_packet_size: the connection stays
    fits.write_bytes(b"\2" * MAX_PAYLOAD)
    seen = new_inbox()
    async with run_link(link_as(broker, *creds.controller, seen, f"{topics.root}/#")):
        # One connection (`-f` twice is not a thing): the oversized one first, then one that fits.
        out = await mosquitto_pub(
            broker, node, creds.password(node), "-V", version, "-t", topics.node_ack(node),
            "-f", str(over),
        )  # fmt: skip
        if version == "mqttv5":
            assert "RC:149" in out, out  # v5 learns why: Packet too large
        else:
            assert "PUBACK" in out, out  # v3.1.1 gets its PUBACK, and the message goes nowhere
        await mosquitto_pub(
            broker, node, creds.password(node), "-V", version, "-t", topics.node_ack(node),
            "-f", str(fits),
        )  # fmt: skip
        await seen.wait_for(topics.node_ack(node))
    assert [len(p) for _, p, _ in seen.messages] == [MAX_PAYLOAD]
    assert broker.running()


async def test_connections_past_the_limit_are_refused_and_logged(make_broker):
    limit = 3
    broker = make_broker(persistence=False, max_connections=limit)

    def client(i: int) -> aiomqtt.Client:
        return aiomqtt.Client(
            broker.host, broker.port, identifier=f"c{i}", timeout=30,
            protocol=aiomqtt.ProtocolVersion.V5,
        )  # fmt: skip

    def closed_at_once(sock: socket.socket) -> bool:
        """Whether the broker closes a fresh TCP connection (refused) rather than waiting for
        its CONNECT. Waiting 2 s: a refusal read late only tries the next one."""
        sock.settimeout(2)
        try:
            return sock.recv(1) == b""
        except TimeoutError:
            return False

    async with contextlib.AsyncExitStack() as stack:
        for i in range(limit):  # the limit's worth of clients all get in
            await stack.enter_async_context(client(i))
        # mosquitto 2.0 counts a connection closed before its CONNECT twice (eclipse-mosquitto
        # issue #1460): the readiness probe of MosquittoProcess.start made room for one more.
        extra = [stack.enter_context(socket.create_connection(broker_address(broker)))]
        while not await asyncio.to_thread(closed_at_once, extra[-1]):
            assert len(extra) < 3, "no connection past the limit was refused"
            extra.append(stack.enter_context(socket.create_connection(broker_address(broker))))
        await wait_for(
            lambda: "denied: max_connections exceeded" in broker_log(broker), 10, "the refusal"
        )
    # Those that held the places are gone (once the broker has seen them go): a newcomer gets
    # in, the broker is fine.
    await wait_for(
        lambda: all(f"Client c{i} disconnected" in broker_log(broker) for i in range(limit)),
        30,
        "the clients' disconnects",
    )
    async with client(99):
        pass
    assert broker.running()


def broker_address(broker: MosquittoProcess) -> tuple[str, int]:
    return broker.host, broker.port


async def test_a_refused_login_is_in_the_broker_log(commune):
    _, broker, _ = commune
    with pytest.raises(aiomqtt.MqttCodeError):
        async with aiomqtt.Client(
            broker.host, broker.port, username="h00-n0", timeout=30,
            password="guess",  # noqa: S106 - a wrong password, on purpose
            protocol=aiomqtt.ProtocolVersion.V5,
        ):  # fmt: skip
            pass
    refused = "disconnected, not authorised"
    await wait_for(lambda: refused in broker_log(broker), 10, "the refusal in the broker log")
    lines = broker_log(broker).splitlines()
    at = next(i for i, line in enumerate(lines) if refused in line)
    # The login is not named (the client id is the username only once it is accepted), but its
    # "New connection from ADDRESS:PORT" line came first (after the start-up probe's), giving
    # the address for a firewall rule.
    opened = [line for line in lines[:at] if "New connection from 127.0.0.1:" in line]
    assert len(opened) == 2, lines
