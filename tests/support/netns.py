"""Network namespaces for the link lab (support.linklab): made by name, entered per socket,
always removed.

Every namespace the lab makes is named `bdlab-<pid>-<role>`, so a run that died before its
cleanup (a SIGKILLed pytest) is recognised by the next one: its pid is gone, and `remove_stale`
deletes it together with any process still inside. The host's own interfaces, addresses and
routes are never touched: veth pairs are created inside lab namespaces and moved between them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

PREFIX = "bdlab"
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000  # <sched.h>; os.setns arrived only in Python 3.12
LAB_RANGE = "198.51.100."  # TEST-NET-2 (RFC 5737); this machine's uplink is in 192.0.2.0/24
_NAME = re.compile(rf"{PREFIX}-(\d+)-[a-z0-9]+")


class LabError(RuntimeError):
    """The lab could not be built (not root, range in use, a command failed)."""


def require_root() -> None:
    if os.geteuid() != 0:
        # A failure, not a skip: a lab test that silently does not run proves nothing.
        raise LabError("the link lab needs root (network namespaces, veth, tc); run as root")


def run(argv: Sequence[str], *, stdin: str | None = None) -> str:
    """Run a command (ip, tc); its stdout. LabError with its stderr if it fails."""
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv[:6])}...: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def batch(tool: str, netns: str, lines: Sequence[str]) -> None:
    """Many `ip`/`tc` commands inside `netns` in one process (`-batch -`)."""
    run([tool, "-n", netns, "-batch", "-"], stdin="\n".join(lines) + "\n")


def range_in_use() -> list[str]:
    """Host interfaces that already hold an address of the lab's range (there must be none)."""
    out = run(["ip", "-o", "-4", "addr", "show"])
    return [line.split()[1] for line in out.splitlines() if f" {LAB_RANGE}" in line]


def netem_available(netns: str) -> bool:
    """Whether this kernel has the netem qdisc (tried on the namespace's loopback, then undone).
    The lab never depends on it; it says so in its description."""
    try:
        run(["tc", "-n", netns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
    except LabError:
        return False
    run(["tc", "-n", netns, "qdisc", "del", "dev", "lo", "root"])
    return True


def lab_namespaces() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if _NAME.fullmatch(p.name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(name: str) -> None:
    """Kill whatever still runs inside `name` (a daemon, its mosquitto), then delete it."""
    with contextlib.suppress(LabError):
        for pid in run(["ip", "netns", "pids", name]).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    with contextlib.suppress(LabError):
        run(["ip", "netns", "del", name])


def remove_stale() -> list[str]:
    """Delete the namespaces of lab runs whose process is gone; the names removed."""
    stale = []
    for name in lab_namespaces():
        match = _NAME.fullmatch(name)
        if match is not None and not _alive(int(match.group(1))):
            remove(name)
            stale.append(name)
    return stale


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise LabError(f"setns: {os.strerror(code) or errno.errorcode.get(code, code)}")


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread inside namespace `name`; sockets made here stay in it.

    A socket belongs to the namespace it was created in, whatever thread later uses it, so the
    test process can hold both ends of a lab link without living in either namespace. Only the
    calling thread moves; the block must not await."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


def socket_in(name: str) -> socket.socket:
    """A non-blocking TCP socket that lives in namespace `name`."""
    with entered(name):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def listener_in(name: str, host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket bound to `host:port` in namespace `name`."""
    with entered(name):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.setblocking(False)
    return sock
