"""One clip on its way to a speaker: the file `partial/<sha>` and its chunk records."""

from __future__ import annotations

import hashlib
import os
import struct
from typing import TYPE_CHECKING, Any

from broadcastd.protocol import CHUNK_SIZE

if TYPE_CHECKING:
    from collections import deque
    from pathlib import Path

# Chunks (1 MiB) between two drop-behind hints; the last chunk gives none, since finish() drops
# the whole clip right after. A hint starts the writeback on the caller's loop, ~0.1 ms here: at
# 256 KiB a 1 MiB clip paid four, a third of what writing its 16 chunks costs.
DROP_BEHIND_EVERY = 16
_RECORD = struct.Struct(">I")


class PartialClip:
    """One clip on its way, in one file `partial/<sha>`: chunk `i` is written at offset
    `i * CHUNK_SIZE`, then its index is recorded after the last possible chunk (at
    `chunks * CHUNK_SIZE + 4 * n`). A chunk counts as present only once its record is written,
    after its bytes, so a killed agent never trusts a half-written chunk; `verify` cuts the
    records off before checking the clip.

    One file per clip, no folder and no file per chunk: on ext4 creating a directory or a file
    costs far more than a 64 KiB write, and with no fsync a write is a copy into the page cache,
    cheap enough to do on the event loop. The sha256 is computed as chunks arrive in order, so
    the usual download is never read back; a resumed or out-of-order one is hashed from disk.

    Written "drop-behind": every few chunks the kernel is asked to start writing the chunks out
    and to drop from memory those already written (POSIX_FADV_DONTNEED over the chunk area; the
    records' page stays). A clip plays hours later, so its pages serve nothing in RAM meanwhile;
    the chunks reach the disk as they arrive instead of in one burst at the final fsync (less to
    lose in a power cut); and the next download reuses the freed pages instead of taking new
    ones (a fleet simulator in one process writes 1000 clips at once).
    Blocking methods except `write` (see there); one owner, not thread-safe.
    """

    def __init__(self, path: Path, chunks: int, log_to: deque[tuple[str, int]]) -> None:
        self.path = path
        self.chunks = chunks
        self._log_to = log_to
        self._records_at = chunks * CHUNK_SIZE
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self.present, self._records = read_records(self.fd, chunks)
        except OSError:
            os.close(self.fd)
            raise
        self._digest: Any = None if self.present else hashlib.sha256()
        self._next = 0  # the next index the running digest expects
        self.closed = False

    def write(self, index: int, data: bytes) -> bool:
        """Write one chunk; False if already present. Two page-cache writes to an open file and
        a drop-behind hint, no create/rename/fsync: tens of microseconds, less than a hop to a
        worker thread."""
        if index in self.present:
            return False
        os.pwrite(self.fd, data, index * CHUNK_SIZE)
        os.pwrite(self.fd, _RECORD.pack(index), self._records_at + self._records * _RECORD.size)
        self._records += 1
        if self._records % DROP_BEHIND_EVERY == 0 and self._records < self.chunks:
            drop_behind(self.fd, self._records_at)
        self.present.add(index)
        self._log_to.append((self.path.name, index))
        if self._digest is not None:
            if index == self._next:
                self._digest.update(data)
                self._next += 1
            else:
                self._digest = None  # out of order: hash the file at the end instead
        return True

    def verify(self, size: int, sha256: str) -> tuple[bool, str]:
        """(ok, what was found) for the clip written so far; drops the chunk records."""
        os.ftruncate(self.fd, min(os.fstat(self.fd).st_size, size))
        length = os.fstat(self.fd).st_size
        if length != size or len(self.present) < self.chunks:
            return False, f"{length} bytes in {len(self.present)} chunks, expected {size}"
        if self._digest is not None and self._next == self.chunks:
            got = self._digest.hexdigest()
        else:
            digest = hashlib.sha256()
            for offset in range(0, size, 1 << 20):
                digest.update(os.pread(self.fd, 1 << 20, offset))
            got = digest.hexdigest()
        return got == sha256, f"sha256 {got[:12]}"

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


def drop_behind(fd: int, length: int) -> None:
    """Start writeback of the file's first `length` bytes (0: all) and drop its clean pages."""
    if hasattr(os, "posix_fadvise"):  # Linux; elsewhere the page cache keeps them, as before
        os.posix_fadvise(fd, 0, length, os.POSIX_FADV_DONTNEED)


def read_records(fd: int, chunks: int) -> tuple[set[int], int]:
    """The chunk indexes recorded in a partial clip file, and how many whole records it holds."""
    start = chunks * CHUNK_SIZE
    length = os.fstat(fd).st_size
    if length <= start:
        return set(), 0
    raw = os.pread(fd, length - start, start)
    whole = len(raw) // _RECORD.size  # a record torn by a power cut is overwritten by the next
    return {i for (i,) in _RECORD.iter_unpack(raw[: whole * _RECORD.size]) if i < chunks}, whole
