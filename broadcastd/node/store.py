"""What a speaker remembers across restarts: played ids, replay marks, volume, and its audio.

The state is small and saved durably (see StateFile) on every change that matters for safety
(a playlist id is recorded as played *before* the first sound, so a crash mid-bulletin can never
make it play twice). Audio arrives in `partial/<sha>` so a restart
resumes (see PartialClip); a verified clip is `clips/<sha>.bin`. Methods here block: call them
via asyncio.to_thread, except `open_partial`, `drop_pending` and PartialClip.write (no fsync:
cheaper than a hop to a thread).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.node.statefile import StateFile, fsync_dir
from broadcastd.protocol import CHUNK_SIZE

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_VOLUME = 80
DROP_BEHIND_EVERY = 4  # chunks (256 KiB) between two drop-behind hints; finish() drops the rest
WRITES_KEPT = 4096  # chunk writes remembered for tests and logs: a speaker runs for months


@dataclass(slots=True)
class NodeState:
    played: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    slot_issued: dict[str, int] = field(default_factory=dict)  # slot -> newest accepted issued_at
    seq: dict[str, int] = field(default_factory=dict)  # envelope kind -> highest accepted seq
    controls: dict[str, int] = field(default_factory=dict)  # control id -> its expires_at
    volume: int = DEFAULT_VOLUME
    # Accepted playlists not yet played, failed or expired: id -> the signed envelope, kept so a
    # reboot re-verifies them. Replaced, never changed in place (a save may be reading it).
    pending: dict[str, str] = field(default_factory=dict)


class NodeStore:
    """The agent's cache_dir. One owner (the agent); not shared between processes."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir
        self.state_file = StateFile(cache_dir)
        self.clips = cache_dir / "clips"
        self.partial = cache_dir / "partial"
        self.state = NodeState()
        self._finished: set[str] = set()  # pending ids done with; forgotten at the next save
        # this process's last chunk writes (clip, index), for tests and logs
        self.chunks_written: deque[tuple[str, int]] = deque(maxlen=WRITES_KEPT)
        # The agent's tasks call these from worker threads concurrently: one writer at a time.
        self._lock = threading.RLock()

    def open(self) -> None:
        try:
            for d in (self.root, self.clips, self.partial):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise BroadcastdError(f"{self.root}: cannot create cache_dir: {exc.strerror}") from None
        self.state = self._load()
        try:
            self.state_file.prepare()
        except OSError as exc:
            raise BroadcastdError(f"{self.root}: cannot create the state files: {exc}") from None

    def _load(self) -> NodeState:
        raw = self.state_file.load()
        if raw is None:
            return NodeState()
        where = self.state_file.slots[self.state_file.generation % 2]
        try:
            return NodeState(
                played=set(raw.get("played", [])),
                cancelled=set(raw.get("cancelled", [])),
                slot_issued={str(k): int(v) for k, v in raw.get("slot_issued", {}).items()},
                seq={str(k): int(v) for k, v in raw.get("seq", {}).items()},
                controls={str(k): int(v) for k, v in raw.get("controls", {}).items()},
                volume=int(raw.get("volume", DEFAULT_VOLUME)),
                pending={str(k): str(v) for k, v in raw.get("pending", {}).items()},
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise BroadcastdError(f"{where}: unreadable node state: {exc}") from None

    def save(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        s = self.state
        finished = set(self._finished)
        if finished:
            s.pending = {k: v for k, v in s.pending.items() if k not in finished}
        doc = {
            "played": sorted(s.played),
            "cancelled": sorted(s.cancelled),
            "slot_issued": s.slot_issued,
            "seq": s.seq,
            "controls": s.controls,
            "volume": s.volume,
            "pending": s.pending,
        }
        try:
            self.state_file.save(doc)
        except OSError as exc:
            # Never play what could not be recorded: the caller stops rather than risk a replay.
            raise BroadcastdError(f"{self.root}: cannot save node state: {exc}") from None
        self._finished.difference_update(finished)

    # -- replay and at-most-once -------------------------------------------------------------------

    def check_replay(
        self, kind: str, *, issued_at: int, seq: int | None, slot: str | None = None
    ) -> None:
        """ProtocolError("replay") if older than what was accepted (seq, or issued_at per slot)."""
        highest = self.state.seq.get(kind)
        if seq is not None and highest is not None and seq < highest:
            raise ProtocolError("replay", f"seq {seq} is lower than {highest} already accepted")
        newest = self.state.slot_issued.get(slot) if slot is not None else None
        if newest is not None and issued_at < newest:
            raise ProtocolError(
                "replay", f"issued_at {issued_at} is older than {newest} for slot {slot}"
            )

    def accept(self, kind: str, *, issued_at: int, seq: int | None, slot: str | None) -> None:
        with self._lock:
            self._accept(kind, issued_at=issued_at, seq=seq, slot=slot)

    def _accept(self, kind: str, *, issued_at: int, seq: int | None, slot: str | None) -> None:
        self._mark(kind, issued_at=issued_at, seq=seq, slot=slot)
        self.save()

    def _mark(self, kind: str, *, issued_at: int, seq: int | None, slot: str | None) -> None:
        s = self.state
        if seq is not None:
            s.seq[kind] = max(seq, s.seq.get(kind, seq))
        if slot is not None:
            s.slot_issued[slot] = max(issued_at, s.slot_issued.get(slot, issued_at))

    def accept_control(
        self, control_id: str, *, issued_at: int, expires_at: int, seq: int | None, now: float
    ) -> None:
        with self._lock:
            s = self.state
            s.controls = {k: v for k, v in s.controls.items() if v > now}  # forget expired ids
            s.controls[control_id] = expires_at
            self._accept("control", issued_at=issued_at, seq=seq, slot=None)

    def mark_played(self, playlist_id: str) -> None:
        with self._lock:
            self.state.played.add(playlist_id)
            self._save()

    def mark_cancelled(self, playlist_id: str) -> None:
        with self._lock:
            self.state.cancelled.add(playlist_id)
            self._save()

    def set_volume(self, volume: int) -> None:
        with self._lock:
            self.state.volume = volume
            self._save()

    # -- accepted, not yet finished: a reboot must not forget them ---------------------------------

    def accept_playlist(  # noqa: PLR0913 - the envelope's replay marks, spelled out
        self,
        playlist_id: str,
        envelope: bytes,
        *,
        issued_at: int,
        seq: int | None,
        slot: str,
        supersedes: Iterable[str] = (),
    ) -> None:
        """Record the replay marks and keep the signed envelope (re-verified at start) until it
        is played, failed or expired; `supersedes` are pending ids it replaces. One durable write
        of the state: on an SD card every fsync'd file counts."""
        with self._lock:
            self._mark("playlist", issued_at=issued_at, seq=seq, slot=slot)
            self._finished.update(supersedes)
            self._finished.discard(playlist_id)
            self.state.pending = {**self.state.pending, playlist_id: envelope.decode("utf-8")}
            self._save()

    def drop_pending(self, playlist_id: str) -> None:
        """Finished with: forgotten at the next save, no I/O now (safe on the event loop). Should
        the speaker restart first, the envelope is verified again: a played or cancelled one is
        dropped then, an expired one acks `expired` once more."""
        self._finished.add(playlist_id)

    def pending_envelopes(self) -> list[bytes]:
        finished = set(self._finished)
        pending = self.state.pending
        return [pending[k].encode("utf-8") for k in sorted(pending) if k not in finished]

    # -- audio -------------------------------------------------------------------------------------

    def clip_path(self, sha256: str) -> Path:
        return self.clips / f"{sha256}.bin"

    def has_clip(self, sha256: str) -> bool:
        return self.clip_path(sha256).is_file()

    def open_partial(self, sha256: str, chunks: int) -> PartialClip | None:
        """The download of `sha256` as left on disk (resumed), or None if the clip is verified."""
        if self.has_clip(sha256):
            return None
        path = self.partial / sha256
        if path.is_dir():  # an older layout's download (a folder per clip): start it again
            shutil.rmtree(path, ignore_errors=True)
        return PartialClip(path, chunks, self.chunks_written)

    def missing_chunks(self, sha256: str, chunks: int) -> list[int]:
        try:
            fd = os.open(self.partial / sha256, os.O_RDONLY)
        except FileNotFoundError:
            return list(range(chunks))
        try:
            present, _ = _read_records(fd, chunks)
        finally:
            os.close(fd)
        return [i for i in range(chunks) if i not in present]

    def write_chunk(self, sha256: str, index: int, data: bytes, chunks: int) -> bool:
        """Store one chunk; False if it was already there. (The agent keeps a PartialClip open.)"""
        part = PartialClip(self.partial / sha256, chunks, self.chunks_written)
        try:
            return part.write(index, data)
        finally:
            part.close()

    def assemble(self, sha256: str, size: int, chunks: int) -> bool:
        """Check size and sha256 of everything written; keep the clip or discard the chunks."""
        return self.finish(PartialClip(self.partial / sha256, chunks, self.chunks_written), size)

    def finish(self, part: PartialClip, size: int) -> bool:
        """Verify a complete download (size + sha256), make it durable and move it to clips/.

        The only fsync of the audio path: a chunk torn by a power cut fails this check and the
        clip is fetched again, so chunks themselves are never synced (an SD card would wear)."""
        sha256 = part.path.name
        try:
            ok, got = part.verify(size, sha256)
            if ok:
                os.fsync(part.fd)
                _drop_behind(part.fd, 0)  # all of it is clean now: nothing of it stays in RAM
        finally:
            part.close()
        if not ok:
            log.warning("clip %s failed verification (%s); fetching it again", sha256[:12], got)
            part.path.unlink(missing_ok=True)
            return False
        part.path.replace(self.clip_path(sha256))
        fsync_dir(self.clips)  # the rename itself must survive a power cut
        return True


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
            self.present, self._records = _read_records(self.fd, chunks)
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
        if self._records % DROP_BEHIND_EVERY == 0:
            _drop_behind(self.fd, self._records_at)
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


def _drop_behind(fd: int, length: int) -> None:
    """Start writeback of the file's first `length` bytes (0: all) and drop its clean pages."""
    if hasattr(os, "posix_fadvise"):  # Linux; elsewhere the page cache keeps them, as before
        os.posix_fadvise(fd, 0, length, os.POSIX_FADV_DONTNEED)


def _read_records(fd: int, chunks: int) -> tuple[set[int], int]:
    """The chunk indexes recorded in a partial clip file, and how many whole records it holds."""
    start = chunks * CHUNK_SIZE
    length = os.fstat(fd).st_size
    if length <= start:
        return set(), 0
    raw = os.pread(fd, length - start, start)
    whole = len(raw) // _RECORD.size  # a record torn by a power cut is overwritten by the next
    return {i for (i,) in _RECORD.iter_unpack(raw[: whole * _RECORD.size]) if i < chunks}, whole
