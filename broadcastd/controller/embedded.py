"""The daemon's side of its broker: the embedded mosquitto's files and process, or an external
broker's login; the speakers' certificate's days left; keeping logins in step with the config."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.errors import LinkError
from broadcastd.transport import pki
from broadcastd.transport.broker import MosquittoProcess
from broadcastd.transport.credentials import Credentials, write_broker_files
from broadcastd.transport.linksettings import bulk_username
from broadcastd.transport.reclaim import reclaim_orphan_broker
from broadcastd.transport.sessionend import take_over

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from contextlib import AsyncExitStack

    from broadcastd.config import Config
    from broadcastd.metrics import Metrics

log = logging.getLogger(__name__)

SESSION_END_S = 3.0  # a revoked speaker is off the broker well within the 5 s promised


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """Where and as whom the controller's MQTT link logs in."""

    url: str
    username: str | None
    password: str | None
    bulk: tuple[tuple[str, str], ...] = ()  # the audio links' own logins (embedded broker only)


class BrokerSide:
    """Starts what `broker:` asks for and keeps it in step with reloads."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.process: MosquittoProcess | None = None  # the supervised child, when embedded

    async def start(self, config: Config, stack: AsyncExitStack) -> BrokerLogin:
        """The embedded mosquitto (started, supervised) or the external broker's login."""
        broker = config.broker
        if broker.mode == "external":
            password = (
                broker.password_file.read_text(encoding="utf-8").strip()
                if broker.password_file
                else None
            )
            return BrokerLogin(str(broker.url), broker.username, password)
        directory = config.state_dir / "broker"
        passwd, acl, creds = write_broker_files(config, directory)
        proc = MosquittoProcess.from_config(config, directory, password_file=passwd, acl_file=acl)
        await asyncio.to_thread(reclaim_orphan_broker, proc.conf_path)
        await stack.enter_async_context(proc)
        self.process = proc
        if proc.options.tls is not None:
            log.info("speakers' TLS listener on %s:%d", proc.options.tls.host, proc.tls_port)
            if proc.websockets_port is not None:
                log.info("speakers' secure WebSockets listener on port %d", proc.websockets_port)
        self.check_certificates(config)
        user, password = creds.controller
        return BrokerLogin(proc.url, user, password, bulk=creds.bulk)

    def save(self) -> None:
        if self.process is not None:
            self.process.save()

    async def refresh(self, config: Config, gone: Collection[str] = ()) -> None:
        """After a reload: a node added can connect without a restart, a node removed (`gone`)
        is disconnected at once, and a renewed certificate is served. mosquitto re-reads its
        password file, ACL and certificate on SIGHUP, but leaves connected clients alone."""
        proc = self.process
        if proc is None or proc.pid is None or config.broker.mode != "embedded":
            return
        if gone:
            await self._end_sessions(config, proc, list(gone), revoke=())
        await asyncio.to_thread(write_broker_files, config, proc.directory)
        self._sighup(proc)
        self.check_certificates(config)

    async def revoke(self, config: Config, nodes: Sequence[str]) -> None:
        """Remove the nodes' logins for good and disconnect them now (within a second)."""
        proc = self.process
        if proc is None or proc.pid is None:
            await asyncio.to_thread(Credentials.load_or_create, config, revoke=nodes)
            return
        await self._end_sessions(config, proc, list(nodes), revoke=nodes)
        await asyncio.to_thread(write_broker_files, config, proc.directory)
        self._sighup(proc)

    async def _end_sessions(
        self, config: Config, proc: MosquittoProcess, nodes: list[str], *, revoke: Sequence[str]
    ) -> None:
        """Give each node a password only we know, then log in with it (sessionend.py), as
        the node and as its audio lane (`<node>_bulk`, which shares the node's password)."""
        temporary = {node: secrets.token_urlsafe(24) for node in nodes}
        await asyncio.to_thread(
            write_broker_files, config, proc.directory, revoke=revoke, extra=temporary
        )
        self._sighup(proc)
        logins = [
            (user, password)
            for node, password in temporary.items()
            for user in (node, bulk_username(node))
        ]
        ends = [
            take_over(proc.host, proc.port, user, password, within=SESSION_END_S)
            for user, password in logins
        ]
        for result in await asyncio.gather(*ends, return_exceptions=True):
            if isinstance(result, LinkError):
                log.error("%s; its login is removed, it cannot reconnect", result)
            elif isinstance(result, BaseException):
                raise result

    def _sighup(self, proc: MosquittoProcess) -> None:
        if proc.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):  # died just now: the supervisor restarts it
            os.kill(proc.pid, signal.SIGHUP)

    def check_certificates(self, config: Config, now: dt.datetime | None = None) -> None:
        """Export when the speakers' certificate and the CA expire (Prometheus counts the days
        left from it, see the alert rules); warn a month ahead."""
        if config.broker.public is None or config.broker.mode != "embedded":
            return
        when = now or dt.datetime.now(dt.UTC)
        for name, info in pki.status(pki.TlsFiles.for_config(config)).items():
            if isinstance(info, pki.PkiError):
                log.error("TLS %s certificate: %s", name, info)
                continue
            expiry = self.metrics.tls_certificate_expiry_timestamp_seconds
            expiry.labels(certificate=name).set(info.not_after.timestamp())
            days = info.days_left(when)
            if days < pki.WARN_DAYS:
                log.warning(
                    "TLS %s certificate expires %s (%.0f days): run `broadcastd tls renew`",
                    name,
                    info.not_after.isoformat(timespec="minutes"),
                    days,
                )
