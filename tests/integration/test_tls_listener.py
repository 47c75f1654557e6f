"""Issue 20: the embedded broker's speakers' listener is TLS 1.2+ with the commune's chain, and
the logins and ACL hold on it (and on its secure WebSockets twin) as on the daemon's loopback
listener. Real daemon, real mosquitto, real `openssl s_client` and `mosquitto_sub`; loopback only
(the certificate names `localhost`)."""

from __future__ import annotations

import asyncio
import gc
import subprocess
from typing import TYPE_CHECKING

import aiomqtt
import pytest
from support.e2e import write_commune
from support.mqtt import Inbox, running_link

from broadcastd.transport import pki
from broadcastd.transport.credentials import Credentials
from broadcastd.transport.link import LinkSettings, MqttLink
from broadcastd.transport.linksettings import tls_context

if TYPE_CHECKING:
    from support.e2e import Running

    from broadcastd.config import Config

ROOT = "bcast/v1/test-commune"


def ports(run: Running) -> tuple[int, int]:
    """The daemon's loopback listener and its speakers' TLS listener."""
    broker = run.daemon.broker
    assert broker is not None
    assert broker.tls_port is not None
    return broker.port, broker.tls_port


def s_client(port: int, *args: str) -> str:
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         *args],
        input="", capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def mosquitto_sub(port: int, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mosquitto_sub", "-V", "mqttv5", "-h", host, "-p", str(port), "-C", "1", "-W", "4",
         "-t", f"{ROOT}/controller/state", *args],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip


async def test_speakers_listener_is_tls12_plus_with_the_commune_chain(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, tls=True)
    ca = str(pki.TlsFiles.for_config(e2e.config).ca_cert)
    async with e2e.running(fleet=False, scheduling=False) as run:
        _, port = ports(run)
        assert e2e.config.broker.public is not None
        assert port == e2e.config.broker.public.port
        shown = await asyncio.to_thread(s_client, port, "-CAfile", ca, "-showcerts")
        assert "Verification: OK" in shown
        assert " 0 s:CN = localhost" in shown
        commune_ca = "O = broadcastd test-commune, CN = broadcastd test-commune commune CA"
        assert f"   i:{commune_ca}" in shown
        assert f" 1 s:{commune_ca}" in shown  # the chain is served whole
        assert "New, TLSv1.3" in shown
        tls12 = await asyncio.to_thread(s_client, port, "-CAfile", ca, "-tls1_2")
        assert "New, TLSv1.2, Cipher is ECDHE-ECDSA-" in tls12
        for weak in ("-tls1_1", "-tls1"):
            # SECLEVEL=0 lets OpenSSL's client offer the old protocol: the refusal is the server's.
            refused = await asyncio.to_thread(s_client, port, weak, "-cipher", "DEFAULT@SECLEVEL=0")
            assert "alert protocol version" in refused, refused
            assert "Cipher is (NONE)" in refused
        expiry = run.daemon.metrics.tls_certificate_expiry_timestamp_seconds
        for name, info in pki.status(pki.TlsFiles.for_config(e2e.config)).items():
            assert isinstance(info, pki.CertInfo)
            assert expiry.labels(certificate=name)._value.get() == info.not_after.timestamp()


async def test_speakers_listener_takes_only_logins_over_verified_tls(tmp_path):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=1, tls=True)
    other = write_commune(tmp_path / "other", hamlets=1, nodes_per_hamlet=1, tls=True)
    ca = str(pki.TlsFiles.for_config(e2e.config).ca_cert)
    wrong_ca = str(pki.TlsFiles.for_config(other.config).ca_cert)
    monitor = Credentials.load_or_create(e2e.config).monitor
    login = ("-u", monitor[0], "-P", monitor[1])
    async with e2e.running(fleet=False, scheduling=False) as run:
        plain, port = ports(run)
        ok = await asyncio.to_thread(mosquitto_sub, port, "localhost", "--cafile", ca, *login)
        assert ok.returncode == 0, ok.stderr
        assert '"state":"online"' in ok.stdout
        cases = {
            "plain MQTT to the TLS port": ("localhost", *login),
            "a name the certificate does not carry": ("127.0.0.1", "--cafile", ca, *login),
            "another commune's CA": ("localhost", "--cafile", wrong_ca, *login),
            "anonymous": ("localhost", "--cafile", ca),
            "a wrong password": ("localhost", "--cafile", ca, "-u", monitor[0], "-P", "x"),
        }
        for what, (host, *args) in cases.items():
            refused = await asyncio.to_thread(mosquitto_sub, port, host, *args)
            assert refused.returncode != 0, what
            assert refused.stdout == "", what
        anonymous = await asyncio.to_thread(mosquitto_sub, plain, "127.0.0.1")
        assert anonymous.returncode != 0  # the loopback listener refuses anonymous too
        await _acl_holds_over_tls(e2e.config, port)
        assert run.daemon.link.connects == 1  # nobody took the controller's connection


async def _acl_holds_over_tls(config: Config, port: int) -> None:
    """A node's login over TLS may write its own topics and nothing else (the ACL is global),
    under its own client id whatever it asks for."""
    creds = Credentials.load_or_create(config)
    watcher, node = Inbox(), Inbox()

    def link(user: str, password: str, inbox: Inbox, *filters: str) -> MqttLink:
        # Every login asks for the controller's client id: the broker gives each its own.
        settings = LinkSettings.from_url(
            f"mqtts://localhost:{port}", client_id="broadcastd-test-commune", username=user,
            password=password,
            tls_ca=pki.TlsFiles.for_config(config).ca_cert,
            subscriptions=tuple((f, 1) for f in filters),
        )  # fmt: skip
        return MqttLink(settings, inbox)

    async with (
        running_link(link(*creds.monitor, watcher, f"{ROOT}/#")),
        running_link(link("h00-n0", creds.password("h00-n0"), node)) as speaker,
    ):
        await speaker.publish(f"{ROOT}/node/h01-n0/ack", b"forged")
        await speaker.publish(f"{ROOT}/hamlet/h00/playlist", b"forged")
        await speaker.publish(f"{ROOT}/node/h00-n0/heartbeat", b"barrier")
        await watcher.wait_for(f"{ROOT}/node/h00-n0/heartbeat")
        forged = [t for t, p, _ in watcher.messages if p == b"forged"]
        assert forged == []


# paho drops the socket of a refused TLS or WebSockets handshake without closing it; the GC
# closes it. paho's internals, not ours (as in test_mqtt_link.py).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_secure_websockets_listener_takes_only_logins_over_verified_tls(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, tls=True, websockets=True)
    ca = pki.TlsFiles.for_config(e2e.config).ca_cert
    monitor = Credentials.load_or_create(e2e.config).monitor
    async with e2e.running(fleet=False, scheduling=False) as run:
        broker = run.daemon.broker
        assert broker is not None
        assert broker.websockets_port is not None
        port = broker.websockets_port

        def client(host: str, *, tls: bool = True, password: str = monitor[1]) -> aiomqtt.Client:
            return aiomqtt.Client(
                host, port, username=monitor[0], password=password, timeout=30,
                transport="websockets", websocket_path="/mqtt",
                tls_context=tls_context(ca) if tls else None,
                protocol=aiomqtt.ProtocolVersion.V5,
            )  # fmt: skip

        async with client("localhost") as ok:
            await ok.subscribe(f"{ROOT}/controller/state", qos=1)
            async for message in ok.messages:
                assert b'"state":"online"' in bytes(message.payload)
                break
        refused = {
            "plain WebSockets": client("localhost", tls=False),
            "a name the certificate does not carry": client("127.0.0.1"),
            "a wrong password": client("localhost", password="x"),  # noqa: S106 - on purpose
        }
        for what, bad in refused.items():
            with pytest.raises(aiomqtt.MqttError):
                async with bad:
                    pytest.fail(f"{what} was let in")
        assert run.daemon.link.connects == 1
    gc.collect()  # those sockets, now, while this test's warning filter applies
