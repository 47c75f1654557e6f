"""node.yaml (DESIGN.md §9): the speaker agent's config, validated with file:line:col errors."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, model_validator

from broadcastd import __version__, protocol
from broadcastd.config.fields import (
    Duration,
    Model,
    PositiveDuration,
    Slug,
    TimeZoneName,
    loopback_host,
    validation_problems,
)
from broadcastd.config.yamlsource import read_yaml
from broadcastd.errors import BroadcastdError, ConfigError, Problem
from broadcastd.transport.link import LinkSettings

if TYPE_CHECKING:
    from collections.abc import Callable


def _public_key(value: str) -> str:
    try:
        protocol.load_public_key(value)
    except BroadcastdError as exc:
        # The finding adds `got:` with the value as written; the key's own one would repeat it.
        raise ValueError(str(exc).partition(", got: ")[0]) from None
    return value


def _player(value: str | None) -> str | None:
    if value is not None and "{file}" not in value:
        raise ValueError("player must contain {file}, such as 'ffplay -nodisp -autoexit {file}'")
    return value


def _command(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot split the command: {exc}") from None
    if not argv:
        raise ValueError("the command is empty")
    return value


def _broker_url(value: str, info: ValidationInfo) -> str:
    if not value.startswith(("mqtt://", "mqtts://", "wss://")):
        raise ValueError(
            "url must look like mqtt://host:1883, mqtts://host:8883 or wss://host:443/mqtt"
        )
    plaintext_ok = info.data.get("insecure_plaintext", False)
    if (
        value.startswith("mqtt://")
        and not plaintext_ok
        and not loopback_host(urlsplit(value).hostname)
    ):
        # Refused before any connection: the password must never leave in clear by mistake.
        raise ValueError(
            "plain MQTT to a broker beyond loopback would send this speaker's password in clear;"
            " use the mqtts:// URL and ca_file of a bundle from `broadcastd node-config`, or set"
            " broker.insecure_plaintext: true on a private network (a VPN)"
        )
    return value


def _existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"file not found (looked for {value})")
    return value


class NodeIdentity(Model):
    id: Slug
    hamlet: Slug
    commune: Slug


class NodeBroker(Model):
    # Before `url`, whose check reads it (pydantic validates fields in this order).
    insecure_plaintext: Annotated[bool, Field(strict=True)] = False
    url: Annotated[str, AfterValidator(_broker_url)]
    username: str | None = None
    password_file: Path | None = None
    password: Annotated[str | None, Field(repr=False)] = None  # `node-config` without --out
    ca_file: Annotated[Path | None, AfterValidator(_existing_file)] = None  # the commune CA

    @model_validator(mode="after")
    def _one_password(self) -> NodeBroker:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give either password or password_file, not both")
        return self

    def read_password(self) -> str | None:
        if self.password_file is None:
            return self.password
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BroadcastdError(
                f"{self.password_file}: cannot read broker password: {exc.strerror}"
            ) from None


class NodeConfig(Model):
    node: NodeIdentity
    broker: NodeBroker
    public_key: Annotated[str, AfterValidator(_public_key)]
    cache_dir: Path
    player: Annotated[str | None, AfterValidator(_player)] = None
    heartbeat: PositiveDuration = dt.timedelta(seconds=30)
    keepalive: PositiveDuration = dt.timedelta(seconds=30)
    # The commune's zone, for the times in log lines; the speaker's own zone when absent.
    timezone: TimeZoneName | None = None
    # Speaker-side controls (node.hooks): commands run as they are written, without a shell.
    amp_on: Annotated[str | None, AfterValidator(_command)] = None
    amp_off: Annotated[str | None, AfterValidator(_command)] = None
    amp_warmup: Duration = dt.timedelta(0)
    telemetry: Annotated[str | None, AfterValidator(_command)] = None

    @property
    def heartbeat_s(self) -> float:
        return max(0.05, self.heartbeat.total_seconds())

    @property
    def tz(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    def link_settings(self, clock: Callable[[], float]) -> LinkSettings:
        """How this speaker logs in: its own id, a retained state with a Last Will, and
        subscriptions to the key rotation, its hamlet's playlist and control, its receipts and
        the controller's state."""
        topics, node = protocol.Topics(self.node.commune), self.node
        state = topics.node_state(node.id)
        return LinkSettings.from_url(
            self.broker.url,
            client_id=f"broadcastd-node-{node.id}",
            username=self.broker.username,
            password=self.broker.read_password(),
            tls_ca=self.broker.ca_file,
            insecure_plaintext=self.broker.insecure_plaintext,
            keepalive=max(5, int(self.keepalive.total_seconds())),
            will=(state, protocol.state_payload("offline", clock(), __version__)),
            online=(state, protocol.state_payload("online", clock(), __version__)),
            subscriptions=(
                # First: after a reconnect a key rotation missed while away must be applied
                # before the retained playlist signed with the new key arrives (one SUBACK at a
                # time, and each subscription's retained messages come in order).
                (topics.keys(), 1),
                # Then its retained `online` (whether time beacons come, node.clock), also before
                # the retained playlist; `online` also means a restarted daemon.
                (topics.controller_state(), 1),
                (topics.playlist(node.hamlet), 1),
                (topics.control(node.hamlet), 1),
                (topics.receipt(node.id), 1),
            ),
        )

    def receipt_verifier(self) -> Callable[[bytes], list[int]]:
        """The ack numbers a genuine receipt for this node confirms (ProtocolError if not)."""
        key = protocol.load_public_key(self.public_key)
        commune, node = self.node.commune, self.node.id
        return lambda payload: protocol.verify_receipt(payload, key, commune=commune, node=node)


# Relative paths in node.yaml resolve against the file's directory, like the main config.
_PATHS = (("cache_dir",), ("broker", "password_file"), ("broker", "ca_file"))


def load_node_config(path: Path) -> NodeConfig:
    """Read and validate node.yaml; ConfigError listing every problem with its line."""
    located = read_yaml(path)
    data = located.data
    if not isinstance(data, dict):
        raise ConfigError(
            [
                Problem(
                    path,
                    1,
                    1,
                    "",
                    "node config must be a mapping (node, broker, ...)",
                    has_value=False,
                )
            ]
        )
    for keys in _PATHS:
        parent: Any = data
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(keys[-1]), str):
            parent[keys[-1]] = str(path.parent / Path(parent[keys[-1]]).expanduser())
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, located, NodeConfig)) from None
