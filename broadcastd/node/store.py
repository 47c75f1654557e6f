"""What a speaker remembers across restarts: played ids, replay marks, volume, and its audio.

`state.json` is small and rewritten atomically with fsync on every change that matters for
safety (a playlist id is recorded as played *before* the first sound, so a crash mid-bulletin can
never make it play twice). Audio arrives as chunk files under `partial/<sha>/<index>` so a restart
resumes; a verified clip is `clips/<sha>.bin`. Methods here block: call them via asyncio.to_thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broadcastd.errors import BroadcastdError, ProtocolError

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_VOLUME = 80


@dataclass(slots=True)
class NodeState:
    played: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    slot_issued: dict[str, int] = field(default_factory=dict)  # slot -> newest accepted issued_at
    seq: dict[str, int] = field(default_factory=dict)  # envelope kind -> highest accepted seq
    controls: dict[str, int] = field(default_factory=dict)  # control id -> its expires_at
    volume: int = DEFAULT_VOLUME


class NodeStore:
    """The agent's cache_dir. One owner (the agent); not shared between processes."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir
        self.state_file = cache_dir / "state.json"
        self.clips = cache_dir / "clips"
        self.partial = cache_dir / "partial"
        self.state = NodeState()
        self.chunks_written: list[tuple[str, int]] = []  # this process's writes, for tests/logs
        # The agent's tasks call these from worker threads concurrently: one writer at a time.
        self._lock = threading.RLock()

    def open(self) -> None:
        try:
            for d in (self.root, self.clips, self.partial):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise BroadcastdError(f"{self.root}: cannot create cache_dir: {exc.strerror}") from None
        self.state = self._load()

    def _load(self) -> NodeState:
        try:
            raw: Any = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return NodeState()
        except (OSError, ValueError) as exc:
            # Refuse to start rather than forget what was played and play it again.
            raise BroadcastdError(f"{self.state_file}: unreadable node state: {exc}") from None
        try:
            return NodeState(
                played=set(raw.get("played", [])),
                cancelled=set(raw.get("cancelled", [])),
                slot_issued={str(k): int(v) for k, v in raw.get("slot_issued", {}).items()},
                seq={str(k): int(v) for k, v in raw.get("seq", {}).items()},
                controls={str(k): int(v) for k, v in raw.get("controls", {}).items()},
                volume=int(raw.get("volume", DEFAULT_VOLUME)),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise BroadcastdError(f"{self.state_file}: unreadable node state: {exc}") from None

    def save(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        s = self.state
        doc = {
            "played": sorted(s.played),
            "cancelled": sorted(s.cancelled),
            "slot_issued": s.slot_issued,
            "seq": s.seq,
            "controls": s.controls,
            "volume": s.volume,
        }
        try:
            _write_atomic(self.state_file, json.dumps(doc, indent=1).encode(), durable=True)
        except OSError as exc:
            # Never play what could not be recorded: the caller stops rather than risk a replay.
            raise BroadcastdError(f"{self.state_file}: cannot save node state: {exc}") from None

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
        s = self.state
        if seq is not None:
            s.seq[kind] = max(seq, s.seq.get(kind, seq))
        if slot is not None:
            s.slot_issued[slot] = max(issued_at, s.slot_issued.get(slot, issued_at))
        self.save()

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

    def _pending_path(self, playlist_id: str) -> Path:
        name = hashlib.sha256(playlist_id.encode()).hexdigest()  # ids may hold any character
        return self.root / "pending" / f"{name}.json"

    def keep_pending(self, playlist_id: str, envelope: bytes) -> None:
        """Keep the signed envelope until it is played, failed or expired (re-verified at start)."""
        path = self._pending_path(playlist_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomic(path, envelope, durable=True)

    def drop_pending(self, playlist_id: str) -> None:
        self._pending_path(playlist_id).unlink(missing_ok=True)

    def pending_envelopes(self) -> list[bytes]:
        folder = self.root / "pending"
        return [p.read_bytes() for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    # -- audio -------------------------------------------------------------------------------------

    def clip_path(self, sha256: str) -> Path:
        return self.clips / f"{sha256}.bin"

    def has_clip(self, sha256: str) -> bool:
        return self.clip_path(sha256).is_file()

    def missing_chunks(self, sha256: str, chunks: int) -> list[int]:
        folder = self.partial / sha256
        return [i for i in range(chunks) if not (folder / str(i)).is_file()]

    def write_chunk(self, sha256: str, index: int, data: bytes) -> bool:
        """Store one chunk (temp + rename); False if it was already there."""
        folder = self.partial / sha256
        target = folder / str(index)
        if target.is_file():
            return False
        folder.mkdir(parents=True, exist_ok=True)
        # No fsync per chunk: a chunk torn by a power cut fails the sha256 check at assembly,
        # and the clip is fetched again; fsync per 64 KiB would wear the board's SD card.
        _write_atomic(target, data, durable=False)
        self.chunks_written.append((sha256, index))
        return True

    def assemble(self, sha256: str, size: int, chunks: int) -> bool:
        """Join the chunks, check size and sha256; keep the clip or discard the chunks."""
        folder = self.partial / sha256
        digest = hashlib.sha256()
        tmp = self.clips / f".{sha256}.tmp"
        total = 0
        with tmp.open("wb") as out:
            for i in range(chunks):
                data = (folder / str(i)).read_bytes()
                total += len(data)
                digest.update(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if total != size or digest.hexdigest() != sha256:
            log.warning(
                "clip %s failed verification (%d bytes, sha256 %s); fetching it again",
                sha256[:12],
                total,
                digest.hexdigest()[:12],
            )
            tmp.unlink()
            shutil.rmtree(folder, ignore_errors=True)
            return False
        tmp.replace(self.clip_path(sha256))
        shutil.rmtree(folder, ignore_errors=True)
        return True


def _write_atomic(path: Path, data: bytes, *, durable: bool) -> None:
    # Unique per writer: a crashed agent's worker thread may still be writing when the next starts.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    tmp.replace(path)
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        with contextlib.suppress(OSError):
            os.fsync(fd)  # the rename itself must survive a power cut
        os.close(fd)
