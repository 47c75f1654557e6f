"""What `MqttLink` says about its own security on a real mosquitto: a refused login and plain
MQTT beyond loopback are log lines an operator can act on, every time they happen."""

from __future__ import annotations

import logging

import pytest
from support.communes import write_sang_moc
from support.e2e import wait_for
from support.mqtt import Inbox, running_link

from broadcastd.config import load_config
from broadcastd.errors import LinkError
from broadcastd.transport import linksettings
from broadcastd.transport.link import LinkSettings, MqttLink


async def test_a_refused_login_says_the_credentials_were_revoked_or_wrong(
    tmp_path, secured_broker, caplog
):
    config = load_config(write_sang_moc(tmp_path), probe_media=False).config
    broker, _ = secured_broker(config, persistence=False)
    settings = LinkSettings(
        host=broker.host, port=broker.port, client_id="bc-01", username="bc-01",
        password="not-its-password",  # noqa: S106 - a wrong one on purpose backoff_initial=0.05, backoff_max=0.1,
    )  # fmt: skip
    link = MqttLink(settings, Inbox())
    with caplog.at_level(logging.ERROR, logger="broadcastd.transport.link"):
        async with running_link(link, wait=False):

            def refused_twice() -> bool:
                return sum("refused the login 'bc-01'" in r.message for r in caplog.records) >= 2

            await wait_for(refused_twice, 10, "two refused logins logged")
    assert link.connects == 0
    line = next(r.message for r in caplog.records if "refused the login" in r.message)
    assert "its credentials were revoked or are wrong" in line
    assert "`broadcastd node-config`" in line


async def test_plain_mqtt_beyond_loopback_warns_at_every_connect(make_broker, caplog, monkeypatch):
    broker = make_broker(persistence=False)
    # The network is loopback only: make this broker's address count as a remote one.
    monkeypatch.setattr(linksettings, "loopback_host", lambda _host: False)
    with pytest.raises(LinkError, match="refusing to send credentials in plain MQTT"):
        LinkSettings.from_url(broker.url, client_id="x")
    settings = LinkSettings.from_url(
        broker.url, client_id="x", username="x", insecure_plaintext=True, backoff_initial=0.05
    )
    link = MqttLink(settings, Inbox())
    with caplog.at_level(logging.WARNING, logger="broadcastd.transport.link"):
        async with running_link(link):
            broker.kill()
            broker.start()
            await wait_for(lambda: link.connects == 2 and link.connected.is_set(), 10, "reconnect")
    warnings = [r.message for r in caplog.records if "in clear" in r.message]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"mqtt: {broker.url} is plain MQTT beyond loopback")
