"""Where and how an `MqttLink` connects: the URL, the login, TLS, and what its failures mean.

TLS verifies the broker's chain and host name, 1.2 or newer. Plain MQTT beyond loopback is
refused unless asked for (`insecure_plaintext`), since it sends the password in clear; the link
then warns at every connect. A refused login or certificate is logged as what to do about it:
retrying never heals those.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from broadcastd.config.brokercfg import WEBSOCKETS_PATH
from broadcastd.config.fields import loopback_host
from broadcastd.errors import LinkError

if TYPE_CHECKING:
    from pathlib import Path

    import aiomqtt

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "wss": 443}
# A speaker's second login, for its audio lane (node.lanes): `<node id>_bulk`, same password. With
# `use_username_as_clientid` two connections of one login would take each other over; '_' is not
# allowed in node ids, so the name never collides with a node's.
BULK_LOGIN_SUFFIX = "_bulk"


def bulk_username(username: str) -> str:
    """The audio lane's login of the speaker that logs in as `username`."""
    return f"{username}{BULK_LOGIN_SUFFIX}"


@dataclass(frozen=True)
class LinkSettings:
    """Where and how to connect; everything the reconnect loop needs, immutable."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: Path | None = None
    tls: bool = False
    # MQTT over (secure) WebSockets at this path instead of plain TCP: `wss://` URLs.
    websocket_path: str | None = None
    insecure_plaintext: bool = False  # plain MQTT beyond loopback allowed (then warned of)
    keepalive: int = 30
    session_expiry: int = 86400
    will: tuple[str, bytes] | None = None
    online: tuple[str, bytes] | None = None
    subscriptions: tuple[tuple[str, int], ...] = ()
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    @classmethod
    def from_url(  # noqa: PLR0913 - mirrors the dataclass fields a caller may override
        cls,
        url: str,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        tls_ca: Path | None = None,
        insecure_plaintext: bool = False,
        keepalive: int = 30,
        session_expiry: int = 86400,
        will: tuple[str, bytes] | None = None,
        online: tuple[str, bytes] | None = None,
        subscriptions: tuple[tuple[str, int], ...] = (),
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> LinkSettings:
        """`mqtt://host:1883`, `mqtts://host:8883` or `wss://host:443/mqtt` (MQTT over secure
        WebSockets; port and path optional). Plain MQTT beyond loopback only with
        `insecure_plaintext`: it would send the password in clear."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise LinkError(f"broker url must look like mqtt://host:1883, got: {url!r}")
        if parts.scheme == "mqtt" and not insecure_plaintext and not loopback_host(parts.hostname):
            raise LinkError(
                f"refusing to send credentials in plain MQTT to {url!r}: use mqtts:// (TLS), or"
                " set broker.insecure_plaintext: true on a private network"
            )
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise LinkError(f"broker url has an invalid port, got: {url!r}") from None
        return cls(
            host=parts.hostname,
            port=port,
            client_id=client_id,
            username=username if username is not None else parts.username,
            password=password if password is not None else parts.password,
            tls_ca=tls_ca,
            tls=parts.scheme in ("mqtts", "wss"),
            websocket_path=(parts.path or WEBSOCKETS_PATH) if parts.scheme == "wss" else None,
            insecure_plaintext=insecure_plaintext,
            keepalive=keepalive,
            session_expiry=session_expiry,
            will=will,
            online=online,
            subscriptions=subscriptions,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )

    @property
    def url(self) -> str:
        if self.websocket_path is not None:
            return f"wss://{self.host}:{self.port}{self.websocket_path}"
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def plaintext_exposed(self) -> bool:
        """Credentials and messages go in clear over a network (allowed, not wished)."""
        return not self.tls and not loopback_host(self.host)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify the broker: its chain against `ca_file` (the commune CA; without it, the system's
    CAs, for an external broker with a public certificate) and its host name; TLS 1.2 or newer."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise LinkError(f"{ca_file}: cannot load the broker's CA certificate: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


# CONNACK reason codes that mean the login itself was refused (MQTT 3.1.1 and 5).
_LOGIN_REFUSED = frozenset({4, 5, 134, 135})


def failure_message(settings: LinkSettings, exc: aiomqtt.MqttError) -> tuple[int, str]:
    """(log level, one line) for a connection that failed or ended: a refused login and a
    refused certificate say what to do, since they never heal by retrying."""
    rc = getattr(exc, "rc", None)
    code = rc.value if isinstance(rc, ReasonCode) else rc
    text = str(exc)
    if isinstance(exc, MqttConnectError) and code in _LOGIN_REFUSED:
        return logging.ERROR, (
            f"mqtt {settings.url}: the broker refused the login {settings.username!r} ({text}):"
            " its credentials were revoked or are wrong; a speaker needs a new bundle from"
            " `broadcastd node-config`"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return logging.ERROR, (
            f"mqtt {settings.url}: TLS: the broker's certificate was refused ({text}): ca_file"
            " must be the commune's ca.crt and the URL's host a name the certificate carries"
        )
    return logging.WARNING, f"mqtt {settings.url}: {text}"
