"""The embedded mosquitto: a supervised child process running the config `brokerconf.py` writes.

Used by the daemon (`broker.mode: embedded`) and by the tests, which always talk to a real
mosquitto. Its logins and ACL are written by `credentials.py`, its certificate by `pki.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Self

from broadcastd.errors import BroadcastdError
from broadcastd.transport import pki
from broadcastd.transport.brokerconf import (
    BrokerOptions,
    TlsListener,
    max_connections_for,
    mosquitto_conf,
    queued_bytes_for,
)
from broadcastd.transport.bulk import BULK_LINKS

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from broadcastd.config import Config

log = logging.getLogger(__name__)


class BrokerError(BroadcastdError):
    """The embedded mosquitto could not be configured, started or kept running."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


# The daemon's own logins (credentials.py): its main link, its bulk audio links, the monitor.
SERVER_LOGINS = 1 + BULK_LINKS + 1


def _longest_bulletin_bytes(config: Config) -> int:
    """The audio of the longest bulletin the config allows: its longest slot (or recording) at
    its bitrate. A sizing figure for the broker's queues, not a limit on what is sent."""
    longest = max(
        [config.audio.max_recording, *(slot.max_duration for slot in config.slots.values())]
    )
    bits_per_s = int(config.audio.bitrate.removesuffix("k")) * 1000
    return int(longest.total_seconds() * bits_per_s) // 8


# --- the process ---------------------------------------------------------------------------


class MosquittoProcess:
    """A mosquitto child process: sync start/stop/kill/restart for tests, `async with` for the
    daemon (which also supervises it and restarts it if it dies)."""

    def __init__(
        self,
        directory: Path,
        options: BrokerOptions | None = None,
        *,
        binary: str = "mosquitto",
        start_timeout: float = 10.0,
        supervise_interval: float = 0.5,
    ) -> None:
        opts = options or BrokerOptions(port=0)
        if opts.port == 0:
            opts = dataclasses.replace(opts, port=free_port(opts.host))
        if opts.tls is not None and opts.tls.port == 0:
            tls = dataclasses.replace(opts.tls, port=free_port(opts.tls.host))
            opts = dataclasses.replace(opts, tls=tls)
        if opts.tls is not None and opts.tls.websockets_port == 0:
            tls = dataclasses.replace(opts.tls, websockets_port=free_port(opts.tls.host))
            opts = dataclasses.replace(opts, tls=tls)
        self.options = opts
        self.directory = directory
        self.binary = binary
        self.start_timeout = start_timeout
        self.supervise_interval = supervise_interval
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._supervisor: asyncio.Task[None] | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        directory: Path,
        *,
        password_file: Path,
        acl_file: Path,
        supervise_interval: float = 0.5,
    ) -> MosquittoProcess:
        """The daemon's broker: `broker.listen`, and the speakers' TLS listener when
        `broker.public` is set (its certificate must exist: PkiError names the fix)."""
        host, _, port = config.broker.listen.rpartition(":")
        tls = None
        public = config.broker.public
        if public is not None:
            files = pki.TlsFiles.for_config(config)
            for path in (files.server_cert, files.server_key):
                if not path.is_file():
                    raise pki.PkiError(
                        f"{path}: missing; broker.public needs the commune's certificate: "
                        "run `broadcastd tls init` (or `tls renew`) first"
                    )
            tls = TlsListener(
                public.bind,
                public.port,
                files.server_cert,
                files.server_key,
                websockets_port=public.websockets_port,
            )
        opts = BrokerOptions(
            host=host.strip("[]"),
            port=int(port),
            password_file=password_file,
            acl_file=acl_file,
            max_queued_bytes=queued_bytes_for(_longest_bulletin_bytes(config)),
            # two logins per node: its own and its audio lane's (`<node>_bulk`)
            max_connections=max_connections_for(2 * len(config.node_hamlets()) + SERVER_LOGINS),
            tls=tls,
        )
        return cls(directory, opts, supervise_interval=supervise_interval)

    @property
    def host(self) -> str:
        return self.options.host

    @property
    def port(self) -> int:
        return self.options.port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_port(self) -> int | None:
        return self.options.tls.port if self.options.tls is not None else None

    @property
    def websockets_port(self) -> int | None:
        return self.options.tls.websockets_port if self.options.tls is not None else None

    def _listeners(self) -> list[tuple[str, int]]:
        found = [(self.host, self.port)]
        tls = self.options.tls
        if tls is not None:
            wildcard = tls.host in ("0.0.0.0", "::")  # noqa: S104 - reached through loopback here
            found.append(("127.0.0.1" if wildcard else tls.host, tls.port))
            if tls.websockets_port is not None:  # on every address or on "lo": both loopback
                found.append(("127.0.0.1", tls.websockets_port))
        return found

    @property
    def conf_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Write the config, start mosquitto and wait until it accepts connections."""
        exe = shutil.which(self.binary)
        if exe is None:
            raise BrokerError(
                f"{self.binary} not found on PATH (install it: apt-get install mosquitto)"
            )
        for host, port in self._listeners():
            if port_open(host, port):
                # Checked first: otherwise the other listener would look like our broker being up.
                raise BrokerError(f"cannot start mosquitto: {host}:{port} is already in use")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(mosquitto_conf(self.options, self.directory), encoding="utf-8")
        with self.log_path.open("ab") as logf:
            self._proc = subprocess.Popen(
                [exe, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                start_new_session=True,  # a Ctrl-C on the terminal goes to us, not the broker
            )
        deadline = time.monotonic() + self.start_timeout
        while not all(port_open(host, port) for host, port in self._listeners()):
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with code {self._proc.returncode} at start "
                    f"(port {self.port}): {self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(
                    f"mosquitto did not accept connections on {self.host}:{self.port} "
                    f"within {self.start_timeout:.0f}s: {self._log_tail()}"
                )
            time.sleep(0.02)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            return " | ".join(lines[-5:])
        return ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (mosquitto saves its database), then SIGKILL if it does not exit in time."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("mosquitto did not stop within %.0fs; killing it", timeout)
            proc.kill()
            proc.wait()

    def save(self) -> None:
        """Ask mosquitto to write its database now (SIGUSR1); a no-op when it is not running."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGUSR1)

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would: nothing is saved at exit."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()

    def restart(self) -> None:
        """Start again on the same port with the same persistence directory."""
        self.stop()
        self.start()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        self._supervisor = asyncio.create_task(self._supervise(), name="mosquitto-supervisor")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await asyncio.to_thread(self.stop)

    async def _supervise(self) -> None:
        """Restart mosquitto whenever it dies, backing off if it keeps dying."""
        delay = 0.5
        while True:
            # Polling keeps this simple and portable; a dead broker for <0.5 s is harmless
            # since every client reconnects with backoff anyway.
            await asyncio.sleep(self.supervise_interval)
            proc = self._proc
            if proc is None or proc.poll() is None:
                delay = 0.5
                continue
            log.error(
                "mosquitto exited with code %s; restarting it (%s)",
                proc.returncode,
                self._log_tail(),
            )
            try:
                await asyncio.to_thread(self.start)
                self.restarts += 1
                log.warning("mosquitto restarted on %s:%d", self.host, self.port)
            except BrokerError as exc:
                log.error("mosquitto restart failed: %s; retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
