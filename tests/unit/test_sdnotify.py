"""sd_notify against a datagram socket the test owns, as systemd would hold it."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

import pytest

from broadcastd.controller.sdnotify import SdNotifier

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(1.0)
    yield sock, str(path)
    sock.close()


def _fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_lifecycle_messages_reach_the_socket(notify_socket):
    sock, path = notify_socket
    notifier = SdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled

    assert notifier.ready("running sang-moc")
    assert _fields(sock) == {"READY": "1", "STATUS": "running sang-moc"}
    assert notifier.watchdog()
    assert _fields(sock) == {"WATCHDOG": "1"}
    assert notifier.reloading()
    reloading = _fields(sock)
    assert reloading["RELOADING"] == "1"
    # Type=notify-reload needs the CLOCK_MONOTONIC time of the reload request, in microseconds.
    usec = int(reloading["MONOTONIC_USEC"])
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert 0 <= now - usec < 5_000_000
    assert notifier.stopping()
    assert _fields(sock) == {"STOPPING": "1"}


def test_generic_notify_sends_all_fields_in_one_datagram(notify_socket):
    sock, path = notify_socket
    SdNotifier({"NOTIFY_SOCKET": path}).notify("READY=1", "STATUS=up")
    assert _fields(sock) == {"READY": "1", "STATUS": "up"}


def test_abstract_socket_address():
    name = f"broadcastd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(1.0)
        assert SdNotifier({"NOTIFY_SOCKET": "@" + name}).notify("WATCHDOG=1")
        assert sock.recv(100) == b"WATCHDOG=1"


def test_without_notify_socket_nothing_happens():
    notifier = SdNotifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_interval() is None


def test_default_reads_the_process_environment(notify_socket, monkeypatch):
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    SdNotifier().notify("READY=1")
    assert sock.recv(100) == b"READY=1"


def test_send_failure_is_logged_once_and_never_raises(tmp_path, caplog):
    notifier = SdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="broadcastd.controller.sdnotify"):
        for _ in range(5):
            assert notifier.watchdog() is False
    failures = [r for r in caplog.records if "sd_notify" in r.getMessage()]
    assert len(failures) == 1
    assert "gone" in failures[0].getMessage()


def test_watchdog_interval_for_this_process():
    env = {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}
    assert SdNotifier(env).watchdog_interval() == 60.0
    assert SdNotifier({"WATCHDOG_USEC": "3000000"}).watchdog_interval() == 3.0


@pytest.mark.parametrize(
    "env",
    [
        {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"},  # meant for another process
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "me"},
    ],
)
def test_watchdog_interval_not_for_us(env):
    assert SdNotifier(env).watchdog_interval() is None
