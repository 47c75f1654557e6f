"""The control socket: a real Unix socket server and the CLI's client, end to end."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import socket
import stat
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest

from broadcastd.controller.controlsocket import (
    MAX_REQUEST_BYTES,
    ControlError,
    ControlServer,
    Peer,
    request,
)
from broadcastd.errors import BroadcastdError, DaemonNotRunningError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class RefusedError(BroadcastdError):
    pass


async def handler(payload: dict[str, Any], peer: Peer) -> dict[str, Any]:
    cmd = payload["cmd"]
    if cmd == "whoami":
        return {"pid": peer.pid, "uid": peer.uid, "user": peer.user}
    if cmd == "echo":
        return {"echo": payload.get("text"), "hamlets": ["bản-chương"]}
    if cmd == "size":  # a request as large as a recorded announcement; its answer stays small
        return {"chars": len(payload.get("text") or "")}
    if cmd == "refuse":
        raise RefusedError("hamlet 'nowhere' is not in the config, got: 'nowhere'")
    if cmd.startswith("refuse "):  # a refusal that echoes what the client sent
        raise RefusedError(f"unknown hamlet(s): {cmd.removeprefix('refuse ')}")
    if cmd == "crash":
        raise RuntimeError("secret internals")
    if cmd == "slow":
        await asyncio.sleep(10)
    return {}


@asynccontextmanager
async def serving(path: Path, **kwargs: Any) -> AsyncIterator[ControlServer]:
    server = ControlServer(path, handler, **kwargs)
    task = asyncio.create_task(server.run(), name="control")
    async with asyncio.timeout(2):
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            listening.cancel()
            task.result()  # re-raise the start-up failure
    try:
        yield server
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_roundtrip(tmp_path):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        result = await request(path, {"cmd": "echo", "text": "Thông báo"}, timeout=2)
        assert result == {"echo": "Thông báo", "hamlets": ["bản-chương"]}
        # each request is its own connection; the server keeps serving
        assert (await request(path, {"cmd": "echo"}, timeout=2))["echo"] is None
    assert not path.exists(), "the socket file is removed when the server stops"


async def test_the_handler_learns_who_connected_from_the_kernel(tmp_path):
    """Issue 17.4: the Unix user is proven by the socket's peer credentials, not claimed."""
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        who = await request(path, {"cmd": "whoami", "operator": "someone-else"}, timeout=2)
    assert who == {"pid": os.getpid(), "uid": os.getuid(), "user": pwd.getpwuid(os.getuid())[0]}


async def test_several_requests_on_one_connection(tmp_path):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        reader, writer = await asyncio.open_unix_connection(path)
        for text in ("a", "b"):
            writer.write(json.dumps({"cmd": "echo", "text": text}).encode() + b"\n")
            answer = json.loads(await reader.readline())
            assert answer == {"ok": True, "result": {"echo": text, "hamlets": ["bản-chương"]}}
        writer.close()


async def test_broadcastd_error_comes_back_as_its_message(tmp_path):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        with pytest.raises(ControlError) as info:
            await request(path, {"cmd": "refuse"}, timeout=2)
        assert str(info.value) == "hamlet 'nowhere' is not in the config, got: 'nowhere'"
        assert isinstance(info.value, BroadcastdError)


async def test_unexpected_error_is_logged_answered_generically_and_server_survives(
    tmp_path, caplog
):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        with (
            caplog.at_level(logging.ERROR, logger="broadcastd.controller.controlsocket"),
            pytest.raises(ControlError) as info,
        ):
            await request(path, {"cmd": "crash"}, timeout=2)
        assert "secret internals" not in str(info.value)
        assert "see the daemon log" in str(info.value)
        assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)
        assert await request(path, {"cmd": "echo", "text": "still here"}, timeout=2)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"not json\n", "one JSON object per line"),
        (b"[1, 2]\n", 'string "cmd"'),
        (b'{"text": "no cmd"}\n', 'string "cmd"'),
        (b"\xff\xfe\n", "one JSON object per line"),
        # Issue 23 item 8: these raised inside the connection callback and got no answer.
        (b"[" * 60000 + b"\n", "one JSON object per line: nested too deeply"),
        (b'{"cmd": "echo", "n": ' + b"9" * 5000 + b"}\n", "one JSON object per line"),
    ],
)
async def test_malformed_requests_are_refused(tmp_path, line, expected):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(line)
        answer = json.loads(await reader.readline())
        writer.close()
        assert answer["ok"] is False
        assert expected in answer["error"]
        assert await request(path, {"cmd": "echo"}, timeout=2)


async def test_strings_from_the_client_cannot_forge_a_log_line(tmp_path, caplog):
    path = tmp_path / "broadcastd.sock"
    forged = "refuse x\n2026-12-06 12:00:00 INFO broadcastd: all speakers OK"
    async with serving(path):
        with (
            caplog.at_level(logging.INFO, logger="broadcastd.controller.controlsocket"),
            pytest.raises(ControlError, match="unknown hamlet"),
        ):
            await request(path, {"cmd": forged}, timeout=2)
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert lines, caplog.text
    assert all("\n" not in line for line in lines), lines
    assert "\\n2026-12-06" in lines[0]  # shown escaped, as the text it is


async def test_oversize_request_is_refused(tmp_path):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        with pytest.raises(ControlError, match=f"request too large: limit is {MAX_REQUEST_BYTES}"):
            await request(path, {"cmd": "echo", "text": "x" * (MAX_REQUEST_BYTES + 10)}, timeout=2)
        # just under the limit is fine
        text = "x" * (MAX_REQUEST_BYTES - 100)
        assert (await request(path, {"cmd": "size", "text": text}, timeout=2))["chars"] == len(text)


async def test_socket_is_owner_only(tmp_path):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        mode = path.lstat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
    assert sorted(tmp_path.iterdir()) == [], "no staging directory is left behind"


async def test_stale_socket_file_is_replaced(tmp_path):
    path = tmp_path / "broadcastd.sock"
    # what a kill -9'd daemon leaves behind: a bound socket file nobody listens on
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    assert path.exists()
    async with serving(path):
        assert await request(path, {"cmd": "echo", "text": "fresh"}, timeout=2)


async def test_live_socket_is_not_stolen(tmp_path):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        with pytest.raises(BroadcastdError, match="already running"):
            await ControlServer(path, handler).run()
        assert await request(path, {"cmd": "echo"}, timeout=2), "the first server still answers"


async def test_regular_file_in_the_way_is_not_deleted(tmp_path):
    path = tmp_path / "broadcastd.sock"
    path.write_text("precious")
    with pytest.raises(BroadcastdError, match="not a socket"):
        await ControlServer(path, handler).run()
    assert path.read_text() == "precious"


async def test_no_daemon(tmp_path):
    path = tmp_path / "broadcastd.sock"
    with pytest.raises(DaemonNotRunningError) as info:
        await request(path, {"cmd": "echo"}, timeout=2)
    assert str(info.value) == (
        f"no running daemon at {path} "
        "(start it with `broadcastd run` or systemctl start broadcastd)"
    )


async def test_stale_socket_file_means_no_daemon(tmp_path):
    path = tmp_path / "broadcastd.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    with pytest.raises(DaemonNotRunningError):
        await request(path, {"cmd": "echo"}, timeout=2)


async def test_client_timeout_when_the_daemon_is_slow(tmp_path):
    path = tmp_path / "broadcastd.sock"
    async with serving(path):
        with pytest.raises(BroadcastdError, match=r"did not answer within 0\.2s"):
            await request(path, {"cmd": "slow"}, timeout=0.2)
        assert await request(path, {"cmd": "echo"}, timeout=2)


async def test_silent_client_is_dropped_after_the_idle_timeout(tmp_path):
    path = tmp_path / "broadcastd.sock"
    async with serving(path, idle_timeout=0.1):
        reader, writer = await asyncio.open_unix_connection(path)
        async with asyncio.timeout(2):
            assert await reader.read() == b"", "the server closed the idle connection"
        writer.close()
