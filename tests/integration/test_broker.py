"""The embedded mosquitto: starts, supervises (restarts after a crash), persists, stops."""

from __future__ import annotations

import asyncio
import logging
import socket
import textwrap

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.brokerdb import saved

from broadcastd import protocol
from broadcastd.config import load_config
from broadcastd.errors import LinkError
from broadcastd.transport.broker import (
    BrokerError,
    MosquittoProcess,
    free_port,
    port_open,
)
from broadcastd.transport.brokerconf import BrokerOptions
from broadcastd.transport.credentials import write_broker_files
from broadcastd.transport.link import LinkSettings, MqttLink


async def _retained(
    broker: MosquittoProcess,
    topic: str,
    *,
    username: str | None = None,
    password: str | None = None,
    within: float = 3.0,
) -> bytes | None:
    """The retained payload on `topic`, or None if there is none (a barrier proves absence)."""
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.subscribe(topic, 1)
        await client.subscribe(f"{topic}/barrier", 1)
        await client.publish(f"{topic}/barrier", b"b", qos=1)
        async with asyncio.timeout(within):
            async for msg in client.messages:
                if msg.topic.matches(topic):
                    return msg.payload
                return None
    return None


async def test_supervisor_restarts_a_killed_broker_and_stops_it_on_exit(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="broadcastd.transport.broker")
    broker = MosquittoProcess(tmp_path, BrokerOptions(port=0), supervise_interval=0.05)
    async with broker:
        first_pid = broker.pid
        async with aiomqtt.Client(broker.host, broker.port) as c:
            await c.publish("state/x", b"kept", qos=1, retain=True)
        await saved(broker)  # mosquitto saves on a clock, or when asked (the daemon asks)
        broker.kill()
        async with asyncio.timeout(5):
            while broker.restarts == 0:  # noqa: ASYNC110 - observing the supervisor from outside
                await asyncio.sleep(0.02)
        assert broker.pid != first_pid
        assert port_open(broker.host, broker.port)
        assert "mosquitto exited with code -9; restarting it" in caplog.text
        # Persistence on: what was retained before the crash is still there.
        assert await _retained(broker, "state/x") == b"kept"
    assert not broker.running()
    assert not port_open(broker.host, broker.port)


def test_start_fails_clearly_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = MosquittoProcess(tmp_path, BrokerOptions(port=port, persistence=False))
        with pytest.raises(BrokerError, match=r"127.0.0.1:\d+ is already in use"):
            broker.start()
    assert not broker.running()


def test_missing_binary_is_a_clear_error(tmp_path):
    broker = MosquittoProcess(tmp_path, binary="mosquitto-not-installed")
    with pytest.raises(BrokerError, match="mosquitto-not-installed not found on PATH"):
        broker.start()


async def test_audio_sized_messages_pass_and_oversized_are_refused(
    mosquitto, topic_prefix, new_inbox, run_link
):
    got = new_inbox()
    sub = MqttLink(
        LinkSettings.from_url(
            mosquitto.url, client_id=f"{topic_prefix}-s", subscriptions=((f"{topic_prefix}/#", 1),)
        ),
        got,
    )
    # A full chunk on the longest audio topic a commune id allows, with its expiry property.
    chunk_topic = f"{topic_prefix}/{'c' * 64}/audio/{'ab' * 32}/99999"
    async with run_link(sub):
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as pub:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = 86400
            chunk = b"\x01" * protocol.CHUNK_SIZE
            await pub.publish(chunk_topic, chunk, qos=1, properties=props)
        assert await got.wait_for(chunk_topic) == [chunk]
        big = MqttLink(LinkSettings.from_url(mosquitto.url, client_id=f"{topic_prefix}-b"), got)
        async with run_link(big):
            with pytest.raises(LinkError):  # the broker closes the connection
                await big.publish(f"{topic_prefix}/huge", b"\x03" * (1024 * 1024), timeout=5)
        await sub.publish(f"{topic_prefix}/barrier", b"b")
        await got.wait_for(f"{topic_prefix}/barrier")
        assert got.on(f"{topic_prefix}/huge") == []


async def test_daemon_broker_from_config_requires_the_generated_credentials(tmp_path):
    port = free_port()
    cfg = tmp_path / "commune.yaml"
    cfg.write_text(
        textwrap.dedent(f"""
            commune: {{id: sang-moc, name: "Xã Sảng Mộc"}}
            broker: {{mode: embedded, listen: "127.0.0.1:{port}"}}
            signing: {{private_key_file: ed25519.key}}
            state_dir: state
            slots: {{noon: {{at: "11:30"}}}}
            hamlets:
              - {{id: ban-chuong, name: "Bản Chương", households: 5, nodes: [{{id: bc-01}}]}}
        """),
        encoding="utf-8",
    )
    config = load_config(cfg, probe_media=False).config
    broker_dir = config.state_dir / "broker"
    passwd, acl, creds = write_broker_files(config, broker_dir)
    async with MosquittoProcess.from_config(
        config, broker_dir, password_file=passwd, acl_file=acl
    ) as broker:
        assert broker.port == port
        user, password = creds.controller
        topic = "bcast/v1/sang-moc/controller/state"
        async with aiomqtt.Client(
            broker.host,
            port,
            username=user,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as c:
            await c.publish(topic, b"online", qos=1, retain=True)
        assert await _retained(broker, topic, username=user, password=password) == b"online"
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, port, protocol=aiomqtt.ProtocolVersion.V5):
                pass
