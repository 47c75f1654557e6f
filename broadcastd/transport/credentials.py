"""MQTT logins for the embedded broker: one random password per user, the mosquitto password file
(`$7$` PBKDF2-SHA512 hashes, so no plaintext password file ever touches the disk) and the ACL."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broadcastd.localtime import local_time
from broadcastd.transport.broker import BrokerError
from broadcastd.transport.bulk import BULK_LINKS
from broadcastd.transport.linksettings import bulk_username
from broadcastd.transport.privatefiles import write_private

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from pathlib import Path

    from broadcastd.config import Config

CONTROLLER_USER = "broadcastd_controller"  # '_' is not allowed in node ids: it cannot collide
# The daemon's publish-only audio links (bulk.py). With `use_username_as_clientid` a login is its
# own client id, so each extra connection needs its own login.
BULK_USERS = tuple(f"{CONTROLLER_USER}_bulk{i}" for i in range(1, BULK_LINKS + 1))
# Read-only, for a technician's `mosquitto_sub` (and tests): logging in as the controller would
# close the daemon's own connection.
MONITOR_USER = "broadcastd_monitor"
SERVICE_USERS = frozenset({CONTROLLER_USER, *BULK_USERS, MONITOR_USER})
_PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes
_SALT_BYTES = 12


def topic_root(commune: str) -> str:
    return f"bcast/v1/{commune}"


@dataclass(frozen=True)
class Credentials:
    """One random password per MQTT user (the controller, its bulk links, the monitor and each
    node), kept in a 0600 file, with the nodes revoked (node id -> when): a revoked node keeps its
    place in the config (hamlet, households) but has no login until it is given a new one."""

    path: Path
    passwords: dict[str, str]
    revoked: dict[str, int] = field(default_factory=dict)

    @property
    def controller(self) -> tuple[str, str]:
        return CONTROLLER_USER, self.passwords[CONTROLLER_USER]

    @property
    def monitor(self) -> tuple[str, str]:
        return MONITOR_USER, self.passwords[MONITOR_USER]

    @property
    def bulk(self) -> tuple[tuple[str, str], ...]:
        """(username, password) of each bulk link."""
        return tuple((user, self.passwords[user]) for user in BULK_USERS)

    @property
    def nodes(self) -> list[str]:
        """The nodes that have a login (not revoked)."""
        return [user for user in self.passwords if user not in SERVICE_USERS]

    def password(self, user: str) -> str:
        try:
            return self.passwords[user]
        except KeyError:
            if user in self.revoked:
                raise BrokerError(
                    f"{user!r} was revoked at {local_time(self.revoked[user])}: "
                    f"`broadcastd node-config {user} --new-login` gives it a new password"
                ) from None
            raise BrokerError(f"no MQTT credentials for {user!r}") from None

    @classmethod
    def path_for(cls, config: Config) -> Path:
        return config.state_dir / "broker" / "credentials.json"

    @classmethod
    def load_or_create(
        cls,
        config: Config,
        *,
        revoke: Collection[str] = (),
        renew: Collection[str] = (),
        now: float | None = None,
    ) -> Credentials:
        """Stable passwords: existing users keep theirs, new nodes get one, removed ones go.

        `revoke`: these nodes lose their password and stay without one; `renew`: these get a
        new password (a revoked one is reinstated)."""
        path = cls.path_for(config)
        old, revoked = _read(path)
        revoked = {n: t for n, t in revoked.items() if n not in renew}
        when = int(time.time() if now is None else now)
        revoked |= {n: revoked.get(n, when) for n in revoke}
        nodes = {n.id for h in config.hamlets for n in h.nodes}
        revoked = {n: t for n, t in revoked.items() if n in nodes}  # removed ones are forgotten
        users = [CONTROLLER_USER, *BULK_USERS, MONITOR_USER]
        users += [n.id for h in config.hamlets for n in h.nodes if n.id not in revoked]
        passwords = {
            u: (None if u in renew else old.get(u)) or secrets.token_urlsafe(24) for u in users
        }
        if passwords != old or revoke or renew:
            body = {"passwords": passwords, "revoked": revoked}
            write_private(path, json.dumps(body, indent=2) + "\n")
        return cls(path=path, passwords=passwords, revoked=revoked)


def _read(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    if not path.exists():
        return {}, {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        passwords = {str(k): str(v) for k, v in data["passwords"].items()}
        revoked = {str(k): int(v) for k, v in data.get("revoked", {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BrokerError(f"{path}: unreadable credentials file: {exc}") from None
    return passwords, revoked


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """mosquitto's `$7$` format: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt, base64."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${_PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def password_file_lines(creds: Credentials, extra: Mapping[str, str] | None = None) -> str:
    """A mosquitto password file, one `user:hash` line per user (and per `extra` login). Each
    node has a second login, `<node>_bulk`, with the same password (its own salt and hash): the
    agent's audio lane (node.lanes), so a node's bundle holds one password."""
    logins = creds.passwords | dict(extra or {})
    nodes = set(creds.nodes) | {user for user in extra or {} if user not in SERVICE_USERS}
    logins |= {bulk_username(node): logins[node] for node in nodes}
    return "".join(f"{user}:{hash_password(pw)}\n" for user, pw in sorted(logins.items()))


def acl_text(
    config: Config, controller_user: str = CONTROLLER_USER, revoked: Collection[str] = ()
) -> str:
    """Controller: everything under the commune. Bulk links: write audio. Monitor: read all.
    Node: write its own `state`, `heartbeat` and `ack`; read controller state, the key
    rotation, its receipts, its hamlet's playlist and control, and audio. A node's audio lane
    (`<node>_bulk`): read audio, nothing else. A revoked node: nothing, on either login."""
    root = topic_root(config.commune.id)
    out = [
        "# generated by broadcastd acl; edits are overwritten",
        f"user {controller_user}",
        f"topic readwrite {root}/#",
        "",
    ]
    for user in BULK_USERS:
        out += [f"user {user}", f"topic write {root}/audio/#", ""]
    out += [f"user {MONITOR_USER}", f"topic read {root}/#", ""]
    for hamlet in config.hamlets:
        for node in (n for n in hamlet.nodes if n.id not in revoked):
            out += [
                f"user {node.id}",
                # Exactly its three topics, never `node/<id>/#`: under a wildcard one login could
                # retain any number of messages (each up to a packet) on topics of its choosing.
                f"topic write {root}/node/{node.id}/state",
                f"topic write {root}/node/{node.id}/heartbeat",
                f"topic write {root}/node/{node.id}/ack",
                f"topic read {root}/controller/state",
                f"topic read {root}/keys",
                f"topic read {root}/receipt/{node.id}",
                f"topic read {root}/hamlet/{hamlet.id}/playlist",
                f"topic read {root}/hamlet/{hamlet.id}/control",
                f"topic read {root}/audio/#",
                "",
                f"user {bulk_username(node.id)}",
                f"topic read {root}/audio/#",
                "",
            ]
    return "\n".join(out)


def write_broker_files(
    config: Config,
    directory: Path,
    *,
    revoke: Collection[str] = (),
    extra: Mapping[str, str] | None = None,
) -> tuple[Path, Path, Credentials]:
    """Write `passwd` and `acl` (0600) into `directory`; returns their paths and the creds.
    `revoke`: nodes whose logins end now; `extra`: logins beside the configured ones, with no
    ACL entry (they can do nothing; revocation.py uses one to end a session)."""
    creds = Credentials.load_or_create(config, revoke=revoke)
    passwd = directory / "passwd"
    acl = directory / "acl"
    write_private(passwd, password_file_lines(creds, extra))
    write_private(acl, acl_text(config, revoked=creds.revoked))
    return passwd, acl, creds
