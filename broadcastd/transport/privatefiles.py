"""Secret files (MQTT passwords, the ACL, node bundles) that nobody else can read or redirect.

A local user on the server must not be able to steer one of our writes with a symlink or a file
planted in advance (a `node.yaml -> state/ed25519.key` would overwrite the signing key; a
pre-created world-readable `password` would keep its mode and leak). So every file is created
with `O_EXCL | O_NOFOLLOW` relative to a directory descriptor that was checked once: a real
directory, owned by us, writable by nobody else. Replacing a file goes through a fresh randomly
named temporary file and a rename, which replaces a planted symlink instead of following it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from contextlib import contextmanager
from typing import TYPE_CHECKING

from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePathError(BroadcastdError):
    """A path we were asked to write secrets into is not ours alone (or already exists)."""


@contextmanager
def private_dir(path: Path, *, fresh: bool) -> Iterator[int]:
    """A descriptor of directory `path`, for `write_new` and `replace`; closed after the block.

    `fresh`: create it (mode 0700); it must not exist yet. Otherwise create it if missing, and
    accept an existing one only if it is a real directory owned by us that nobody else may write.
    """
    if fresh:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.mkdir(0o700)
        except FileExistsError:
            raise UnsafePathError(
                f"{path} already exists; give a new directory (it is created, mode 0700)"
            ) from None
        except OSError as exc:
            raise UnsafePathError(f"cannot create {path}: {exc.strerror}") from None
    elif path.is_symlink():
        raise UnsafePathError(f"{path} is a symlink; give the real directory")
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.mkdir(0o700, exist_ok=True)
        except OSError as exc:
            raise UnsafePathError(f"cannot create directory {path}: {exc.strerror}") from None
    try:
        fd = os.open(path, _OPEN_DIR)
    except OSError as exc:
        raise UnsafePathError(f"{path} is not a directory we can use: {exc.strerror}") from None
    try:
        _check_ours(path, os.fstat(fd))
        yield fd
    finally:
        os.close(fd)


def _check_ours(path: Path, st: os.stat_result) -> None:
    if st.st_uid != os.geteuid():
        raise UnsafePathError(
            f"{path} belongs to uid {st.st_uid}, not to the user writing secrets into it "
            f"(uid {os.geteuid()})"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafePathError(
            f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            "use a directory only its owner may write"
        )


def write_new(dir_fd: int, name: str, data: bytes, *, mode: int = 0o600) -> None:
    """Create `name` in the directory; refuse if anything (even a dangling symlink) is there."""
    try:
        fd = os.open(name, _CREATE, mode, dir_fd=dir_fd)
    except FileExistsError:
        raise UnsafePathError(f"{name} already exists; refusing to reuse it") from None
    except OSError as exc:
        raise UnsafePathError(f"cannot create {name}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # the umask may only have narrowed it; say exactly what we mean
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(dir_fd: int, name: str, data: bytes, *, mode: int = 0o600) -> None:
    """Atomically put `data` at `name`: a fresh temporary file renamed over whatever was there."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    write_new(dir_fd, tmp, data, mode=mode)
    try:
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise UnsafePathError(f"cannot replace {name}: {exc.strerror}") from None


def write_private(path: Path, text: str) -> None:
    """Replace the secret file `path` (mode 0600) in a directory that is ours alone."""
    with private_dir(path.parent, fresh=False) as fd:
        replace(fd, path.name, text.encode("utf-8"))
