"""The local control socket (`state_dir/broadcastd.sock`) and its client.

Protocol: one JSON object per line, `{"cmd": "...", ...}`, answered by one JSON line,
`{"ok": true, "result": {...}}` or `{"ok": false, "error": "message"}`. A line is at most
MAX_REQUEST_BYTES: a recorded announcement carries its files in it. The socket file is mode 0600
inside the 0700 state directory: whoever can use it can make every loudspeaker in the commune talk.
The kernel tells the server who connected (SO_PEERCRED: pid, uid, gid); that is the only identity
the daemon can prove, so it is handed to the handler beside each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pwd
import socket
import stat
import struct
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcastd.errors import BroadcastdError, DaemonNotRunningError

log = logging.getLogger(__name__)

# An announcement's recordings travel in the request, base64 (4/3 of requests.MAX_RECORDING_BYTES);
# every other request is a few hundred bytes.
MAX_REQUEST_BYTES = 24 * 1024 * 1024
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a `nodes --json` for a whole district still fits
IDLE_TIMEOUT_S = 30.0  # a client that connects and says nothing is dropped after this
PROBE_TIMEOUT_S = 1.0

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a control connection, as the kernel reports it."""

    pid: int | None
    uid: int | None
    user: str | None  # the uid's login name, or `uid N` when it has none

    @classmethod
    def of(cls, sock: socket.socket | None) -> Peer:
        if sock is None:
            return cls(None, None, None)
        try:
            pid, uid, _gid = _UCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            )
        except (OSError, AttributeError):  # AttributeError: no SO_PEERCRED on this platform
            return cls(None, None, None)
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = f"uid {uid}"
        return cls(pid, uid, user)


Handler = Callable[[dict[str, Any], Peer], Awaitable[dict[str, Any]]]


class ControlError(BroadcastdError):
    """The daemon refused a control request; the message is the daemon's own text."""


def _not_running(path: Path) -> DaemonNotRunningError:
    return DaemonNotRunningError(
        f"no running daemon at {path} "
        "(start it with `broadcastd run` or systemctl start broadcastd)"
    )


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class ControlServer:
    """Serve `handler` on a Unix socket at `path` until cancelled.

    The socket file exists only while `run()` does; `listening` is set once clients can connect.
    """

    def __init__(
        self, path: Path, handler: Handler, *, idle_timeout: float = IDLE_TIMEOUT_S
    ) -> None:
        self.path = path
        self._handler = handler
        self._idle_timeout = idle_timeout
        self._connections: set[asyncio.Task[Any]] = set()
        self.listening = asyncio.Event()

    async def run(self) -> None:
        await self._clear_stale()
        sock = self._bind()
        inode = self.path.stat().st_ino
        try:
            server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_REQUEST_BYTES
            )
        except BaseException:
            sock.close()
            self._unlink_if_ours(inode)
            raise
        log.info("control socket listening at %s", self.path)
        try:
            async with server:
                self.listening.set()
                await server.serve_forever()
        finally:
            self.listening.clear()
            for task in list(self._connections):
                task.cancel()  # 3.11's server.close() leaves running handlers alone
            self._unlink_if_ours(inode)

    async def _clear_stale(self) -> None:
        """Remove a socket file nobody listens on (a killed daemon's); never steal a live one."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise BroadcastdError(
                f"{self.path} exists and is not a socket; remove it or change state_dir"
            )
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                _, writer = await asyncio.open_unix_connection(self.path)
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            log.info("removing stale control socket %s", self.path)
            self.path.unlink(missing_ok=True)
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        raise BroadcastdError(f"another broadcastd is already running (it answers at {self.path})")

    def _bind(self) -> socket.socket:
        """Bind in a private 0700 directory, chmod 0600, then rename into place.

        The file is never visible with looser permissions, and no process-wide umask is touched
        (render threads may be creating files at the same moment).
        """
        private = Path(tempfile.mkdtemp(prefix=".ctl", dir=self.path.parent))
        staging = private / "s"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(str(staging))
            staging.chmod(0o600)
            staging.rename(self.path)
        except OSError as exc:
            sock.close()
            staging.unlink(missing_ok=True)
            raise BroadcastdError(
                f"cannot create the control socket at {self.path}: {exc}"
            ) from exc
        finally:
            private.rmdir()
        sock.listen(16)
        return sock

    def _unlink_if_ours(self, inode: int) -> None:
        # A newer daemon may already have replaced the file; deleting its socket would orphan it.
        with contextlib.suppress(OSError):
            if self.path.lstat().st_ino == inode:
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._converse(reader, writer, Peer.of(writer.get_extra_info("socket")))
        except (ConnectionError, TimeoutError) as exc:
            log.debug("control client left: %s", exc)
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
    ) -> None:
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout):
                    line = await reader.readline()
            except ValueError:  # StreamReader turns an over-limit line into ValueError
                log.warning("control request over %d bytes refused", MAX_REQUEST_BYTES)
                writer.write(
                    _encode(_failure(f"request too large: limit is {MAX_REQUEST_BYTES} bytes"))
                )
                await writer.drain()
                return  # the rest of that line is still unread: the stream cannot be resynchronised
            if not line:
                return
            writer.write(_encode(await self._answer(line, peer)))
            await writer.drain()

    async def _answer(self, line: bytes, peer: Peer) -> dict[str, Any]:
        try:
            payload = json.loads(line)
        except RecursionError:  # "[[[[..." deeper than the parser's stack
            return _failure("request must be one JSON object per line: nested too deeply")
        except ValueError as exc:  # bad UTF-8, bad JSON, an integer too long to convert
            return _failure(f"request must be one JSON object per line: {exc}")
        if not isinstance(payload, dict) or not isinstance(payload.get("cmd"), str):
            return _failure('request must be a JSON object with a string "cmd"')
        # %r for whatever the client sent: a newline in `cmd` must not forge a log line.
        cmd = payload["cmd"][:64]
        try:
            result = await self._handler(payload, peer)
            response = {"ok": True, "result": result}
            _encode(response)  # prove it serialises before claiming success
        except BroadcastdError as exc:
            log.info("control %r from %r refused: %r", cmd, peer.user, str(exc))
            return _failure(str(exc))
        except Exception:
            # Never kill the server over one request; the traceback goes to the daemon's log only.
            log.exception("control %r failed", cmd)
            return _failure(f"internal error handling {cmd!r}; see the daemon log")
        return response


def _failure(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


async def request(
    path: Path,
    payload: dict[str, Any],
    *,
    timeout: float = 10,  # noqa: ASYNC109 - the contract callers use; applied per phase below
) -> dict[str, Any]:
    """Send one request to the running daemon and return its `result`.

    Raises DaemonNotRunningError when nothing listens at `path`, ControlError with the daemon's text
    when it refuses, BroadcastdError when it does not answer in `timeout` seconds.
    """
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(path, limit=MAX_RESPONSE_BYTES)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise _not_running(path) from exc
    except PermissionError as exc:
        raise BroadcastdError(
            f"permission denied on {path}: run this as the daemon's user (e.g. sudo -u broadcastd)"
        ) from exc
    except TimeoutError as exc:
        raise BroadcastdError(
            f"the daemon at {path} did not accept a connection within {timeout:g}s"
        ) from exc
    except OSError as exc:
        raise BroadcastdError(f"cannot reach the daemon at {path}: {exc}") from exc
    try:
        async with asyncio.timeout(timeout):
            writer.write(_encode(payload))
            await writer.drain()
            line = await reader.readline()
    except TimeoutError as exc:
        raise BroadcastdError(f"the daemon at {path} did not answer within {timeout:g}s") from exc
    except (ConnectionError, ValueError) as exc:
        raise BroadcastdError(f"the control connection to {path} failed: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return _result(path, line)


def _result(path: Path, line: bytes) -> dict[str, Any]:
    if not line:
        raise BroadcastdError(f"the daemon at {path} closed the connection without answering")
    try:
        response = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BroadcastdError(f"the daemon at {path} answered with invalid JSON: {exc}") from exc
    if not isinstance(response, dict):
        raise BroadcastdError(f"the daemon at {path} answered with a non-object: {line[:80]!r}")
    if response.get("ok") is True:
        result = response.get("result")
        return result if isinstance(result, dict) else {"value": result}
    raise ControlError(
        str(response.get("error") or "the daemon refused the request without a reason")
    )
