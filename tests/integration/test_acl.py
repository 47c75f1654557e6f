"""The generated password file and ACL on a real mosquitto: a node can only do its own job."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest
from support.communes import write_sang_moc
from support.mqtt import link_as

from broadcastd.config import load_config
from broadcastd.transport.credentials import CONTROLLER_USER

ROOT = "bcast/v1/sang-moc"


@pytest.fixture
def secured(tmp_path, secured_broker):
    config = load_config(write_sang_moc(tmp_path), probe_media=False).config
    return secured_broker(config, persistence=False)


DENIED_FOR_BC01 = [
    f"{ROOT}/hamlet/ban-chuong/playlist",
    f"{ROOT}/hamlet/ban-chuong/control",
    f"{ROOT}/hamlet/na-lay/playlist",
    f"{ROOT}/audio/{'ab' * 32}/0",
    f"{ROOT}/controller/state",
    f"{ROOT}/node/nl-01/state",
    f"{ROOT}/node/bc-02/ack",
    # its own subtree beyond its three topics (retained junk there filled the broker's disk)
    f"{ROOT}/node/bc-01/junk",
    f"{ROOT}/node/bc-01/state/x",
    f"{ROOT}/node/bc-01",
    "bcast/v1/other-commune/node/bc-01/state",
]


async def test_node_cannot_publish_outside_its_own_topics(secured, new_inbox, run_link):
    broker, creds = secured
    seen = new_inbox()
    controller = link_as(broker, *creds.controller, seen, f"{ROOT}/#")
    node = link_as(broker, "bc-01", creds.password("bc-01"), new_inbox())
    async with run_link(controller), run_link(node):
        for topic in DENIED_FOR_BC01:
            await node.publish(topic, b"forged", retain=True)
        # QoS 1 from one client arrives in order: once the barrier is in, a denied message
        # that got through would be in too.
        await node.publish(f"{ROOT}/node/bc-01/heartbeat", b"barrier")
        await seen.wait_for(f"{ROOT}/node/bc-01/heartbeat")
        assert [t for t, _, _ in seen.messages] == [f"{ROOT}/node/bc-01/heartbeat"]


async def test_node_reads_only_its_hamlet_controller_state_and_audio(secured, new_inbox, run_link):
    broker, creds = secured
    got = new_inbox()
    controller = link_as(broker, *creds.controller, new_inbox())
    node = link_as(
        broker,
        "bc-01",
        creds.password("bc-01"),
        got,
        f"{ROOT}/hamlet/+/playlist",
        f"{ROOT}/hamlet/+/control",
        f"{ROOT}/node/#",
        f"{ROOT}/audio/#",
        f"{ROOT}/controller/state",
    )
    async with run_link(controller), run_link(node):
        for topic in [
            f"{ROOT}/hamlet/na-lay/playlist",
            f"{ROOT}/hamlet/na-lay/control",
            f"{ROOT}/node/nl-01/state",
            f"{ROOT}/hamlet/ban-chuong/playlist",
            f"{ROOT}/hamlet/ban-chuong/control",
            f"{ROOT}/audio/{'cd' * 32}/0",
            f"{ROOT}/controller/state",  # last: the barrier
        ]:
            await controller.publish(topic, b"x")
        await got.wait_for(f"{ROOT}/controller/state")
        assert [t for t, _, _ in got.messages] == [
            f"{ROOT}/hamlet/ban-chuong/playlist",
            f"{ROOT}/hamlet/ban-chuong/control",
            f"{ROOT}/audio/{'cd' * 32}/0",
            f"{ROOT}/controller/state",
        ]


@pytest.mark.parametrize(
    ("username", "password"),
    [("bc-01", "wrong-password"), (None, None), (CONTROLLER_USER, "guess"), ("intruder", "x")],
    ids=["wrong-password", "anonymous", "controller-guess", "unknown-user"],
)
async def test_bad_credentials_are_refused(secured, username, password):
    broker, _ = secured
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5,
    )
    with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori[sz]ed|[Bb]ad user"):
        async with asyncio.timeout(5), client:
            pass
