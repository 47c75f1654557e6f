"""What a speaker remembers across restarts: played ids, replay marks, stops, volume, its audio.

The state is small and saved durably (see StateFile) on every change that matters for safety
(a playlist id is recorded as played *before* the first sound, so a crash mid-bulletin can never
make it play twice). Audio arrives in `partial/<sha>` so a restart
resumes (see PartialClip); a verified clip is `clips/<sha>.bin`, deleted a week after its last
use (`prune`). Methods here block: call them via asyncio.to_thread, except `open_partial`,
`prune`, `drop_pending` and PartialClip.write (no fsync: cheaper than a hop to a thread).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.node.partial import PartialClip, drop_behind, read_records
from broadcastd.node.statefile import StateFile, fsync_dir

if TYPE_CHECKING:
    from collections.abc import Container, Iterable, Iterator

log = logging.getLogger(__name__)

DEFAULT_VOLUME = 80
CLIP_KEEP_DAYS = 7  # a clip no pending playlist needs is deleted this long after its last use
CLIP_KEEP_S = CLIP_KEEP_DAYS * 24 * 3600
WRITES_KEPT = 4096  # chunk writes remembered for tests and logs: a speaker runs for months


@dataclass(frozen=True, slots=True)
class StopMark:
    """A hamlet's stopped-at watermark: the newest stop accepted for it."""

    id: str
    issued_at: int
    seq: int | None

    def covers(self, issued_at: int, seq: int | None) -> bool:
        """Whether an envelope issued at `issued_at` (with `seq`) was issued before this stop.
        One controller numbers playlists and controls with one sequence, so `seq` orders them
        exactly; `issued_at` (whole seconds) decides only when either has none."""
        if seq is not None and self.seq is not None:
            return seq < self.seq
        return issued_at < self.issued_at


@dataclass(slots=True)
class NodeState:
    played: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    slot_issued: dict[str, int] = field(default_factory=dict)  # slot -> newest accepted issued_at
    seq: dict[str, int] = field(default_factory=dict)  # envelope kind -> highest accepted seq
    controls: dict[str, int] = field(default_factory=dict)  # control id -> its expires_at
    volume: int = DEFAULT_VOLUME
    volume_set_at: int | None = None  # issued_at of the volume control that set `volume`
    stopped: dict[str, StopMark] = field(default_factory=dict)  # hamlet -> its watermark
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
                volume_set_at=_optional_int(raw.get("volume_set_at")),
                stopped={
                    str(h): StopMark(str(m["id"]), int(m["issued_at"]), _optional_int(m["seq"]))
                    for h, m in raw.get("stopped", {}).items()
                },
                pending={str(k): str(v) for k, v in raw.get("pending", {}).items()},
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
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
            "volume_set_at": s.volume_set_at,
            "stopped": {
                h: {"id": m.id, "issued_at": m.issued_at, "seq": m.seq}
                for h, m in s.stopped.items()
            },
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

    def set_volume(self, volume: int, issued_at: int | None = None) -> None:
        with self._lock:
            self.state.volume = volume
            self.state.volume_set_at = issued_at
            self._save()

    def level_for(self, volume: int | None, volume_since: int | None) -> int:
        """The level to play a playlist at: its own (`volume`, from the hamlet's schedule or
        emergency.volume) unless a volume control set this node's level since that scheduled
        level began (`volume_since`; an emergency has none, so it always plays at its own);
        without a level of its own, the node's."""
        s = self.state
        if volume is None:
            return s.volume
        if volume_since is not None and s.volume_set_at is not None:
            return s.volume if s.volume_set_at >= volume_since else volume
        return volume

    # -- stops: a watermark per hamlet -------------------------------------------------------------

    def note_stop(self, hamlet: str, mark: StopMark) -> bool:
        """Raise `hamlet`'s watermark to `mark` in memory (then `save` it, in a thread); False if
        it already covers as much. In memory first: the scheduler must see it at once."""
        with self._lock:
            current = self.state.stopped.get(hamlet)
            if current is not None and not mark.covers(current.issued_at, current.seq):
                return False  # the same stop again, or an older one
            self.state.stopped = {**self.state.stopped, hamlet: mark}
            return True

    def stopped_by(self, hamlet: str, issued_at: int, seq: int | None) -> StopMark | None:
        """The stop an envelope of `hamlet` issued then was issued before, if any."""
        mark = self.state.stopped.get(hamlet)
        return mark if mark is not None and mark.covers(issued_at, seq) else None

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

    def open_partial(self, sha256: str, chunks: int) -> PartialClip | None:
        """The download of `sha256` as left on disk (resumed), or None if the clip is verified
        (then marked as used now: see `prune`)."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.clip_path(sha256))
            return None
        path = self.partial / sha256
        if path.is_dir():  # an older layout's download (a folder per clip): start it again
            shutil.rmtree(path, ignore_errors=True)
        return PartialClip(path, chunks, self.chunks_written)

    def prune(self, keep: Container[str]) -> list[str]:
        """Delete the clips and downloads no sha256 in `keep` names that were last used more
        than CLIP_KEEP_S ago; the sha256s deleted. A speaker's card is small and it runs for
        years; a clip used again (a daily intro) counts as used then (`open_partial`), an
        abandoned download as used at its last chunk (its mtime). No fsync: a deletion a power
        cut undoes is done again next time."""
        older_than = time.time() - CLIP_KEEP_S
        removed = [
            sha
            for sha, entry in self._cached()
            if sha not in keep and _delete_if_older(entry, older_than)
        ]
        if removed:
            log.info(
                "deleted %d clips or downloads unused for %d days", len(removed), CLIP_KEEP_DAYS
            )
        return removed

    def _cached(self) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(sha256, entry) for every verified clip and every download in the cache."""
        for folder in (self.clips, self.partial):
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                name = _CACHED.fullmatch(entry.name)
                if name is not None:
                    yield name[1], entry

    def missing_chunks(self, sha256: str, chunks: int) -> list[int]:
        try:
            fd = os.open(self.partial / sha256, os.O_RDONLY)
        except FileNotFoundError:
            return list(range(chunks))
        try:
            present, _ = read_records(fd, chunks)
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
                drop_behind(part.fd, 0)  # all of it is clean now: nothing of it stays in RAM
        finally:
            part.close()
        if not ok:
            log.warning("clip %s failed verification (%s); fetching it again", sha256[:12], got)
            part.path.unlink(missing_ok=True)
            return False
        part.path.replace(self.clip_path(sha256))
        fsync_dir(self.clips)  # the rename itself must survive a power cut
        return True


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


_CACHED = re.compile(r"([0-9a-f]{64})(?:\.bin)?")  # clips/<sha>.bin and partial/<sha>


def _delete_if_older(entry: os.DirEntry[str], older_than: float) -> bool:
    """Delete a cache entry last modified before `older_than`; whether it was deleted."""
    try:
        if entry.stat(follow_symlinks=False).st_mtime >= older_than:
            return False
        if entry.is_dir(follow_symlinks=False):  # an older layout's download (a folder)
            shutil.rmtree(entry.path)
        else:
            Path(entry.path).unlink()
    except OSError as exc:
        log.warning("cannot delete %s from the cache: %s", entry.path, exc)
        return False
    return True
