"""The embedded mosquitto's generated config: listeners, logins, limits, each value with its reason.

Two listeners at most: `listen`, plain MQTT for the daemon's own connections (kept on loopback by
the config check), and the speakers' TLS listener (`broker.public`). `per_listener_settings
false`: the password file, the ACL and `allow_anonymous false` are global, so they apply to every
listener alike, and a durable session keeps the same rules whichever listener it last came in on
(with per-listener settings, mosquitto judges a disconnected session by its last listener's).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broadcastd import protocol

if TYPE_CHECKING:
    from pathlib import Path

# The largest payload anyone has a reason to send: an audio chunk or a signed envelope (both at
# most 64 KiB); a node's own messages are far smaller. `message_size_limit` counts the payload
# only, so it is exactly that: a bigger publish is dropped (a v5 client gets a PUBACK with an
# error reason code) and its sender stays connected. (mosquitto's start-up note that it
# recommends max_packet_size instead is expected: both are set, for their different answers.)
MAX_PAYLOAD = max(protocol.CHUNK_SIZE, protocol.MAX_ENVELOPE_BYTES)
# The whole packet: that payload plus the fixed header, topic and properties. Anything bigger
# closes the connection before the broker buffers it (a 10 MB publish costs it nothing).
MAX_PACKET = MAX_PAYLOAD + 4096
# Per client, for what the broker holds while a client is away or slow: the controller's queue
# holds node messages (~150 bytes each), a node's its hamlet's controls and the audio chunks it
# subscribed to (retained: all of a clip's chunks are queued at once). Bounded, so one login
# cannot make the broker hold (and persist) without limit; the bytes are sized by
# `queued_bytes_for` to hold two bulletins, so a whole playlist's audio is never dropped.
MAX_QUEUED_MESSAGES = 20_000
MIN_QUEUED_BYTES = 16 * 1024 * 1024
# QoS 1 messages in flight to one client before the broker waits for its PUBACKs, for clients that
# do not announce their own MQTT v5 Receive Maximum (third-party speakers, v3.1.1 clients; our own
# links announce one, see link.py). 20 chunks is 1.3 MiB: ~10 s of a 1 Mbit/s 3G link, enough
# to keep it busy across a second of latency, and all a reconnect must resend.
MAX_INFLIGHT_MESSAGES = 20
# Connections each listener accepts beyond one per login. With `use_username_as_clientid` an
# authenticated login holds one connection at most (a second one takes its place), so only
# handshakes in progress (a whole hamlet reconnecting after a cell outage) and nodes a reload
# added (mosquitto reads max_connections only at start) need room above the logins.
CONNECTION_HEADROOM = 64
# Brokers started without a commune config (tests, benchmarks): below the usual 1024 open files.
DEFAULT_MAX_CONNECTIONS = 1000
# Time-based saves: at most one rewrite of the database per interval, whatever clients do. Saving
# on changes rewrote the whole database (retained audio included) after every PUBACK, subscribe
# and retained publish, so one login could make the broker write gigabytes. The daemon asks for
# a save (SIGUSR1, `MosquittoProcess.save`) after it has published playlists or controls, and it
# re-publishes its retained playlists and audio after every reconnect.
AUTOSAVE_INTERVAL_S = 60
# TLS 1.2 suites with forward secrecy and AEAD only (the certificate is ECDSA, so these are all
# that could be chosen anyway; saying it keeps a weaker suite out if OpenSSL's defaults change).
# TLS 1.3 suites are all acceptable and left to OpenSSL.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384"
)


@dataclass(frozen=True)
class TlsListener:
    """The speakers' listener: where it binds and the certificate chain and key it serves; with
    `websockets_port`, a second one on the same address serving MQTT over secure WebSockets."""

    host: str
    port: int
    certfile: Path
    keyfile: Path
    websockets_port: int | None = None


@dataclass(frozen=True)
class BrokerOptions:
    """What goes into the generated mosquitto.conf."""

    host: str = "127.0.0.1"
    port: int = 1883
    persistence: bool = True
    password_file: Path | None = None
    acl_file: Path | None = None
    max_packet_size: int = MAX_PACKET
    message_size_limit: int = MAX_PAYLOAD
    max_queued_messages: int = MAX_QUEUED_MESSAGES
    max_queued_bytes: int = MIN_QUEUED_BYTES
    max_inflight_messages: int = MAX_INFLIGHT_MESSAGES
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per listener
    tls: TlsListener | None = None
    extra: tuple[str, ...] = field(default=())


def mosquitto_conf(opts: BrokerOptions, data_dir: Path) -> str:
    """The text of mosquitto.conf for these options; `data_dir` holds persistence and logs."""
    lines = [
        "# generated by broadcastd; edits are overwritten",
        "per_listener_settings false",
        "set_tcp_nodelay true",
        *_limits(opts),
        "persistent_client_expiration 7d",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        # Refused logins: a revoked or stolen speaker, or someone guessing passwords.
        "# notices: every connection with its address, every refused login ('<unknown>",
        "# disconnected, not authorised', after the line with its address) and every",
        "# connection refused over max_connections",
        "log_type notice",
        "connection_messages true",
        "# no connection rate limit: mosquitto 2.0 has none (README: an nftables rule does it)",
    ]
    if os.geteuid() == 0:
        # Run as root, mosquitto would switch to the 'mosquitto' user and lose access to our files.
        lines.append(f"user {getpass.getuser()}")
    lines += _persistence(opts, data_dir)
    if opts.password_file is not None:
        lines += ["allow_anonymous false", f"password_file {opts.password_file}"]
    else:
        lines.append("allow_anonymous true")
    if opts.acl_file is not None:
        lines.append(f"acl_file {opts.acl_file}")
    # Listener blocks last: every line after `listener` until the next one belongs to it, so
    # `extra` (global options, or the first listener's own) goes right after the first.
    lines.append(f"listener {opts.port} {opts.host}")
    lines += _each_listener(opts)
    lines += list(opts.extra)
    if opts.tls is not None:
        lines.append(f"listener {opts.tls.port} {opts.tls.host}")
        lines += _each_listener(opts) + tls_lines(opts.tls)
        if opts.tls.websockets_port is not None:
            lines += _websockets_listener(opts, opts.tls, opts.tls.websockets_port)
    return "\n".join(lines) + "\n"


def _websockets_listener(opts: BrokerOptions, tls: TlsListener, port: int) -> list[str]:
    """MQTT over secure WebSockets, for carriers that block 8883: the same logins, ACL and
    certificate. mosquitto 2.0 gives libwebsockets the listener's address as an interface name,
    so loopback is "lo" and every address is no address (the config allows only those two)."""
    where = "" if tls.host in ("0.0.0.0", "::") else " lo"  # noqa: S104 - a comparison
    return [
        f"listener {port}{where}",
        "protocol websockets",
        "# mosquitto 2.0 does not apply max_connections to a websockets listener (issue #3455)",
        *_each_listener(opts),
        *tls_lines(tls),
    ]


def _limits(opts: BrokerOptions) -> list[str]:
    """The global limits, each with its reason (the constants above say more)."""
    return [
        "# largest packet: a 64 KiB chunk or envelope plus headers; bigger closes the connection",
        f"max_packet_size {opts.max_packet_size}",
        "# largest payload: a 64 KiB chunk or envelope; bigger is dropped, the sender stays",
        f"message_size_limit {opts.message_size_limit}",
        "# per client, while it is away or slow: node messages for the daemon, two bulletins'",
        "# audio for a node; bounded so one login cannot make the broker hold without limit",
        f"max_queued_messages {opts.max_queued_messages}",
        f"max_queued_bytes {opts.max_queued_bytes}",
        "# QoS 1 in flight to a client announcing no Receive Maximum: 20 chunks, 10 s of 3G",
        f"max_inflight_messages {opts.max_inflight_messages}",
    ]


def _each_listener(opts: BrokerOptions) -> list[str]:
    """What mosquitto sets per listener, whatever `per_listener_settings` says."""
    lines = [
        "# one per login (a login holds one connection) plus room for handshakes and new nodes",
        f"max_connections {opts.max_connections}",
    ]
    if opts.password_file is None:
        return lines
    # A login is its own client id: otherwise one stolen speaker's password can connect as
    # "broadcastd-<commune>" and close the controller's connection (firing its Last Will), or
    # as another node's id and discard that node's queued session. A listener option: a
    # listener without it lets any login take any client id.
    return [*lines, "use_username_as_clientid true"]


def max_connections_for(logins: int) -> int:
    """Per listener: every login connected at once, plus `CONNECTION_HEADROOM`."""
    return logins + CONNECTION_HEADROOM


def queued_bytes_for(bulletin_bytes: int) -> int:
    """Per client: two of the longest bulletins' audio (one being fetched while the previous
    one's chunks are still queued for a slow link), in whole chunks, at least MIN_QUEUED_BYTES."""
    chunks = protocol.chunk_count(bulletin_bytes)
    return max(MIN_QUEUED_BYTES, 2 * chunks * MAX_PACKET)


def _persistence(opts: BrokerOptions, data_dir: Path) -> list[str]:
    if not opts.persistence:
        return ["persistence false"]
    return [
        "persistence true",
        f"persistence_location {data_dir}/",
        "persistence_file mosquitto.db",
        "autosave_on_changes false",
        f"autosave_interval {AUTOSAVE_INTERVAL_S}",
    ]


def tls_lines(tls: TlsListener) -> list[str]:
    return [
        f"certfile {tls.certfile}",
        f"keyfile {tls.keyfile}",
        # A minimum: 1.2 and 1.3. TLS 1.0/1.1 are refused (weak MACs, no AEAD).
        "tls_version tlsv1.2",
        f"ciphers {TLS12_CIPHERS}",
        # Speakers prove who they are with their password, over this encrypted link; a client
        # certificate per speaker would be one more secret to provision and revoke.
        "require_certificate false",
    ]
