"""The daemon's side of its broker: the embedded mosquitto's files and process, or an external
broker's login; the speakers' certificate's days left; keeping logins in step with the config."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.transport import pki
from broadcastd.transport.broker import MosquittoProcess
from broadcastd.transport.credentials import write_broker_files
from broadcastd.transport.reclaim import reclaim_orphan_broker

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AsyncExitStack

    from broadcastd.config import Config
    from broadcastd.metrics import Metrics

log = logging.getLogger(__name__)

CERT_CHECK_S = 3600.0  # days left move slowly; an hourly look keeps the gauge and log honest


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
        self.check_certificates(config)
        user, password = creds.controller
        return BrokerLogin(proc.url, user, password, bulk=creds.bulk)

    def save(self) -> None:
        if self.process is not None:
            self.process.save()

    def refresh(self, config: Config) -> None:
        """After a reload: a node added (or removed) can connect (or not) without a restart, and
        a renewed certificate is served. mosquitto re-reads its password file, ACL and
        certificate on SIGHUP; existing sessions stay."""
        proc = self.process
        if proc is None or proc.pid is None or config.broker.mode != "embedded":
            return
        write_broker_files(config, proc.directory)
        self._sighup(proc)
        self.check_certificates(config)

    def _sighup(self, proc: MosquittoProcess) -> None:
        if proc.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):  # died just now: the supervisor restarts it
            os.kill(proc.pid, signal.SIGHUP)

    def check_certificates(self, config: Config, now: dt.datetime | None = None) -> None:
        """Export the days left of the speakers' certificate and the CA; warn a month ahead."""
        if config.broker.public is None or config.broker.mode != "embedded":
            return
        when = now or dt.datetime.now(dt.UTC)
        for name, info in pki.status(pki.TlsFiles.for_config(config)).items():
            if isinstance(info, pki.PkiError):
                log.error("TLS %s certificate: %s", name, info)
                continue
            days = info.days_left(when)
            self.metrics.tls_certificate_days_left.labels(certificate=name).set(round(days, 2))
            if days < pki.WARN_DAYS:
                log.warning(
                    "TLS %s certificate expires %s (%.0f days): run `broadcastd tls renew`",
                    name,
                    info.not_after.isoformat(timespec="minutes"),
                    days,
                )

    async def watch_certificates(self, config: Callable[[], Config]) -> None:
        """Runs forever: the days-left gauge stays current between reloads."""
        while True:
            await asyncio.sleep(CERT_CHECK_S)
            self.check_certificates(config())
