"""The `broker:` section: the embedded broker's two listeners, or an external broker.

`listen` is plain MQTT for the daemon's own connections and a technician's `mosquitto_sub` on the
server; `public` is the TLS listener speakers reach over 3G/4G and the internet, with the name and
addresses its certificate (`broadcastd tls init`) must carry. Plain MQTT to anything but loopback
sends every speaker's password and every ack in clear, so it needs `insecure_plaintext: true`
(a VPN) said out loud; `crosscheck.py` reports it at the line that asks for it.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from broadcastd.config.fields import HostPort, Model, loopback_host

# A DNS name as it goes into a certificate: lowercase labels of letters, digits and inner '-'.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


def _dns_name(value: str) -> str:
    if not _DNS_NAME.fullmatch(value):
        raise ValueError(
            "expected the host name speakers use, in lowercase, such as loa.example.vn"
        )
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("expected an IP address such as 203.0.113.7") from None


# The path in a `wss://` URL; mosquitto serves MQTT on any path, paho asks for this one by default.
WEBSOCKETS_PATH = "/mqtt"

DnsName = Annotated[str, Field(strict=True), AfterValidator(_dns_name)]
IpAddress = Annotated[str, Field(strict=True), AfterValidator(_ip_address)]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]


class PublicListener(Model):
    """The speakers' listener: MQTT over TLS 1.2+ with the commune's own certificate; with
    `websockets_port`, also MQTT over secure WebSockets (wss) with the same certificate, for
    carrier networks that block 8883 but pass HTTPS (443)."""

    host: DnsName  # what node-config writes into every bundle's URL; the certificate names it
    port: Port = 8883
    addresses: tuple[IpAddress, ...] = ()  # also in the certificate: speakers told an address
    bind: IpAddress = "0.0.0.0"  # noqa: S104 - the listener is for the internet, by design
    websockets_port: Port | None = None

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    @property
    def websockets_url(self) -> str | None:
        """What a speaker behind a carrier that blocks `port` puts in node_url."""
        if self.websockets_port is None:
            return None
        return f"wss://{self.host}:{self.websockets_port}{WEBSOCKETS_PATH}"

    @model_validator(mode="after")
    def _websockets_bind(self) -> PublicListener:
        # mosquitto 2.0 hands a websockets listener's address to libwebsockets as an interface
        # name: an IP address there is ignored (it listens on every address). All addresses
        # and loopback ("lo") can be said; another address cannot.
        if self.websockets_port is not None and not (
            self.bind in ("0.0.0.0", "::") or loopback_host(self.bind)  # noqa: S104 - a comparison
        ):
            raise ValueError(
                "websockets_port needs bind 0.0.0.0 (or a loopback address): mosquitto's "
                f"websockets listener cannot bind one address such as {self.bind}"
            )
        if self.websockets_port == self.port:
            raise ValueError("websockets_port must differ from port")
        return self


# MQTT, MQTT over TLS, or MQTT over secure WebSockets (a path allowed); never plain ws://.
_BROKER_URL = re.compile(r"mqtts?://[^/\s]+|wss://[^/\s]+(?:/[^\s]*)?")


class Broker(Model):
    mode: Literal["embedded", "external"] = "embedded"
    listen: HostPort = "127.0.0.1:1883"
    url: str | None = None
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    # The URL speakers use to reach the broker (what `node-config` writes into node.yaml).
    # Defaults to the public TLS listener, `url` for an external broker, or mqtt://<listen>.
    node_url: str | None = None
    public: PublicListener | None = None
    insecure_plaintext: Annotated[bool, Field(strict=True)] = False

    @property
    def url_for_nodes(self) -> str:
        if self.node_url:
            return self.node_url
        if self.public is not None:
            return self.public.url
        if self.mode == "external" and self.url:
            return self.url
        return f"mqtt://{self.listen}"

    @model_validator(mode="after")
    def _consistent(self) -> Broker:
        if self.mode == "external" and not self.url:
            raise ValueError(
                "an external broker needs 'url' (mqtt://host:1883 or mqtts://host:8883)"
            )
        for name in ("url", "node_url"):
            value = getattr(self, name)
            if value is not None and not _BROKER_URL.fullmatch(value):
                raise ValueError(
                    f"{name} must look like mqtt://host:1883, mqtts://host:8883 or"
                    f" wss://host:443/mqtt, got: {value!r}"
                )
        if self.mode == "external" and self.public is not None:
            raise ValueError("'public' configures the embedded broker's TLS listener only")
        return self

    def plaintext_exposures(self) -> list[tuple[str, str]]:
        """(field, what) for every plain MQTT connection this config makes or hands to speakers
        beyond loopback; empty when `insecure_plaintext` says so on purpose."""
        if self.insecure_plaintext:
            return []
        found: list[tuple[str, str]] = []
        if self.mode == "embedded" and not loopback_host(self.listen.rpartition(":")[0]):
            found.append(("listen", "the embedded broker would take passwords in clear on it"))
        for name in ("url", "node_url"):
            value = getattr(self, name)
            parts = urlsplit(value) if value else None
            if parts is not None and parts.scheme == "mqtt" and not loopback_host(parts.hostname):
                who = "the daemon" if name == "url" else "speakers"
                found.append((name, f"{who} would send passwords in clear to it"))
        return found
