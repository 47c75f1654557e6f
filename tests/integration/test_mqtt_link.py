"""MqttLink against a real mosquitto: routing, retained+expiry, reconnects, clean close vs LWT."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge
from support.brokerdb import saved

from broadcastd.errors import LinkError
from broadcastd.transport.broker import free_port
from broadcastd.transport.link import RECEIVE_MAXIMUM, LinkSettings, MqttLink

ROOT = Path(__file__).resolve().parents[2]


def settings(broker, **kw) -> LinkSettings:
    kw.setdefault("client_id", f"t-{uuid.uuid4().hex[:10]}")
    return LinkSettings.from_url(broker.url, **kw)


async def test_routes_messages_publishes_retained_with_expiry_and_clears(
    mosquitto, topic_prefix, new_inbox, run_link
):
    p = topic_prefix
    gauge = Gauge("mqtt_connected", "test", registry=CollectorRegistry())
    inbox, seen = new_inbox(), new_inbox()

    async def flaky(topic: str, payload: bytes, props: object) -> None:
        if payload == b"boom":
            raise ValueError("handler bug")
        await inbox(topic, payload, props)

    node = MqttLink(
        settings(mosquitto, online=(f"{p}/state", b"online"), subscriptions=((f"{p}/in/#", 1),)),
        flaky,
        metrics_gauge=gauge,
    )
    observer = MqttLink(settings(mosquitto, subscriptions=((f"{p}/#", 1),)), seen)
    async with run_link(node), run_link(observer):
        assert gauge._value.get() == 1
        assert await seen.wait_for(f"{p}/state") == [b"online"]

        await node.publish(f"{p}/out", b"playlist", retain=True, expiry=60)
        await seen.wait_for(f"{p}/out")
        _, _, props = next(m for m in seen.messages if m[0] == f"{p}/out")
        assert 0 < props.MessageExpiryInterval <= 60

        # A handler that raises is counted and the link keeps routing.
        await observer.publish(f"{p}/in/a", b"boom")
        await observer.publish(f"{p}/in/a", b"after")
        assert await inbox.wait_for(f"{p}/in/a") == [b"after"]
        assert node.handler_failures == 1

        # An empty retained payload clears the retained message: a late subscriber gets only
        # the barrier published after it.
        await node.publish(f"{p}/out", b"", retain=True)
        await node.publish(f"{p}/barrier", b"b", retain=True)
        late_inbox = new_inbox()
        late = MqttLink(
            settings(mosquitto, subscriptions=((f"{p}/out", 1), (f"{p}/barrier", 1))), late_inbox
        )
        async with run_link(late):
            await late_inbox.wait_for(f"{p}/barrier")
            assert late_inbox.on(f"{p}/out") == []
    assert gauge._value.get() == 0


async def test_connect_asks_for_the_v5_receive_window_not_the_brokers_20(new_inbox):
    """Without Receive Maximum in CONNECT mosquitto keeps 20 QoS 1 messages in flight to a client
    and refills one PUBACK per loop pass: the daemon, where every node's acks arrive, lagged."""
    link = MqttLink(LinkSettings(host="127.0.0.1", port=1, client_id="rm"), new_inbox())
    props = link._make_client()._properties  # what CONNECT will carry
    assert props is not None
    assert props.ReceiveMaximum == RECEIVE_MAXIMUM == 65535  # type: ignore[attr-defined]


async def test_publish_while_disconnected_fails_fast(new_inbox, run_link):
    link = MqttLink(
        LinkSettings(host="127.0.0.1", port=free_port(), client_id="nobody", backoff_initial=0.05),
        new_inbox(),
    )
    async with run_link(link, wait=False):
        start = time.monotonic()
        with pytest.raises(LinkError, match="not connected"):
            await link.publish("x/y", b"z")
        with pytest.raises(LinkError, match="not connected"):
            await link.wait_connected(0.2)
        assert time.monotonic() - start < 1.0


async def test_survives_broker_kill_and_gets_messages_queued_while_away(
    make_broker, topic_prefix, new_inbox, run_link
):
    p = topic_prefix
    broker = make_broker()
    inbox = new_inbox()
    connects = 0

    async def on_connect() -> None:
        nonlocal connects
        connects += 1

    # backoff_initial=2: the first reconnect comes 1-2 s after the crash, after the restart
    # below and the publish into the persistent session.
    node = MqttLink(
        settings(broker, subscriptions=((f"{p}/q", 1),), backoff_initial=2.0, backoff_max=2.0),
        inbox,
        on_connect=on_connect,
    )
    async with run_link(node):
        assert connects == 1
        await saved(broker)  # the new session on disk (mosquitto saves on a clock, or when asked)
        broker.kill()
        await asyncio.wait_for(node._lost.wait(), 5)
        start = time.monotonic()
        with pytest.raises(LinkError, match="not connected"):
            await node.publish(f"{p}/node/state", b"online")
        assert time.monotonic() - start < 0.5
        broker.start()
        sender = MqttLink(settings(broker), new_inbox())
        async with run_link(sender):
            for i in range(3):
                await sender.publish(f"{p}/q", f"m{i}".encode())
        assert not node.connected.is_set(), "reconnected too early for this test to mean much"
        await node.wait_connected(10)
        assert await inbox.wait_for(f"{p}/q", 3) == [b"m0", b"m1", b"m2"]
        assert connects == 2


_AGENT = """
import asyncio, sys
from broadcastd.transport.link import RECEIVE_MAXIMUM, LinkSettings, MqttLink

async def main():
    url, cid, topic = sys.argv[1:4]
    async def ignore(*_): pass
    link = MqttLink(LinkSettings.from_url(url, client_id=cid, will=(topic, b"offline-lwt"),
                                          online=(topic, b"online")), ignore)
    await link.run()

asyncio.run(main())
"""


async def test_close_publishes_final_state_and_no_last_will(
    mosquitto, topic_prefix, new_inbox, run_link
):
    state = f"{topic_prefix}/state"
    seen = new_inbox()
    observer = MqttLink(settings(mosquitto, subscriptions=((f"{topic_prefix}/#", 1),)), seen)
    async with run_link(observer):
        link = MqttLink(
            settings(mosquitto, will=(state, b"offline-lwt"), online=(state, b"online")),
            new_inbox(),
        )
        task = asyncio.create_task(link.run())
        await link.wait_connected(5)
        await link.close(final=(state, b"offline-clean"))
        await asyncio.wait_for(task, 5)
        await observer.publish(f"{topic_prefix}/barrier", b"b")
        await seen.wait_for(f"{topic_prefix}/barrier")
        assert seen.on(state) == [b"online", b"offline-clean"]

        # The retained state a speaker would read on connect is the final one.
        late = new_inbox()
        async with run_link(MqttLink(settings(mosquitto, subscriptions=((state, 1),)), late)):
            assert await late.wait_for(state) == [b"offline-clean"]


async def test_killed_process_last_will_fires(mosquitto, topic_prefix, new_inbox, run_link):
    state = f"{topic_prefix}/state"
    seen = new_inbox()
    observer = MqttLink(settings(mosquitto, subscriptions=((state, 1),)), seen)
    async with run_link(observer):
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _AGENT,
            mosquitto.url,
            f"agent-{uuid.uuid4().hex[:8]}",
            state,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            await seen.wait_for(state, 1, within=10)
        finally:
            agent.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sees a dead socket
            await agent.wait()
        assert await seen.wait_for(state, 2) == [b"online", b"offline-lwt"]


async def test_cancelled_run_sends_last_will(mosquitto, topic_prefix, new_inbox, run_link):
    # A crash inside the daemon cancels the link's task: the retained state must not stay
    # `online`, so the link asks the broker for its Last Will.
    state = f"{topic_prefix}/state"
    seen = new_inbox()
    observer = MqttLink(settings(mosquitto, subscriptions=((state, 1),)), seen)
    async with run_link(observer):
        link = MqttLink(
            settings(mosquitto, will=(state, b"offline-lwt"), online=(state, b"online")),
            new_inbox(),
        )
        task = asyncio.create_task(link.run())
        await link.wait_connected(5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await seen.wait_for(state, 2) == [b"online", b"offline-lwt"]
        assert not link.connected.is_set()


def _make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    steps = [
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            ca_crt,
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ],
        [
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
        [
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_crt,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            crt,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    ]
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True)
    return ca_crt, crt, key


# paho drops the socket of a failed TLS handshake without closing it (the GC closes it); that
# is paho's internals, not ours, and it only happens for the untrusted-certificate attempts.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_mqtts_with_a_private_ca(tmp_path, make_broker, new_inbox, run_link):
    ca, crt, key = _make_tls_files(tmp_path)
    broker = make_broker(
        persistence=False, extra=(f"cafile {ca}", f"certfile {crt}", f"keyfile {key}")
    )
    url = f"mqtts://127.0.0.1:{broker.port}"
    got = new_inbox()
    link = MqttLink(
        LinkSettings.from_url(url, client_id="tls", tls_ca=ca, subscriptions=(("t/#", 1),)), got
    )
    assert link.settings.tls
    async with run_link(link):
        await link.publish("t/x", b"over tls")
        assert await got.wait_for("t/x") == [b"over tls"]

    # Without the private CA the server certificate is not trusted: never connected.
    untrusted = MqttLink(
        LinkSettings.from_url(url, client_id="tls2", backoff_initial=0.05), new_inbox()
    )
    async with run_link(untrusted, wait=False):
        with pytest.raises(LinkError):
            await untrusted.wait_connected(0.5)
    gc.collect()  # collect those sockets now, while this test's warning filter applies
