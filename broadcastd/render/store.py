"""The content-addressed clip store: `state_dir/audio/<sha256>.<ext>` plus an index of render keys.

Blobs are named by the sha256 of their bytes; `index/<render key>.json` maps a render key to its
blob (one small file per key, so the daemon and `broadcastd render` can write concurrently without
a lock), with what made it (`engine`: the TTS engine that spoke it, or `recording`) and the blobs
it replaced (`earlier`: a key spoken again, e.g. by the preferred engine once it answers, still
says the same thing, which the dispatcher needs to know). Every write goes to a `.tmp-*` file, is
fsynced, then renamed: a crash or `kill -9` leaves at worst a temp file, never a partial clip under
a real name, and a blob lands before the index entry naming it.
Blocking; async callers run these methods with `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from broadcastd.errors import RenderError
from broadcastd.models import Clip

EXTENSIONS = ("mp3", "opus", "wav")
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0  # a temp file this old belongs to a writer that died
_EARLIER_KEPT = 8  # a key is rendered again rarely (engine back, `render --force`): a short memory


class AudioStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.index_dir = root / "index"

    def _ensure(self) -> None:
        self.index_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path | None:
        """The stored file with this content hash, or None."""
        for ext in EXTENSIONS:
            path = self.root / f"{sha256}.{ext}"
            if path.is_file():
                return path
        return None

    def read(self, sha256: str) -> bytes:
        path = self.path_for(sha256)
        if path is None:
            raise RenderError(f"audio {sha256} is not in the store {self.root}")
        return path.read_bytes()

    def lookup(self, key: str) -> tuple[Clip, dict[str, object]] | None:
        """The clip indexed under a render key (and its index entry), if its blob is intact."""
        entry_path = self.index_dir / f"{key}.json"
        try:
            entry = json.loads(entry_path.read_text("utf-8"))
            path = self.root / f"{entry['sha256']}.{entry['ext']}"
            size = path.stat().st_size
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if size != entry.get("size"):
            return None
        with contextlib.suppress(OSError):
            os.utime(entry_path)  # last use: what prune() goes by
        earlier = tuple(name for name in entry.get("earlier", ()) if isinstance(name, str))
        return Clip(entry["sha256"], path, size, int(entry["duration_ms"]), earlier), entry

    def engine_of(self, key: str) -> str | None:
        """Which TTS engine spoke the clip indexed under `key` (`recording` for a file)."""
        try:
            engine = json.loads((self.index_dir / f"{key}.json").read_text("utf-8")).get("engine")
        except (OSError, ValueError, AttributeError):
            return None
        return engine if isinstance(engine, str) else None

    def put(self, key: str, data: bytes, ext: str, duration_ms: int, **meta: object) -> Clip:
        """Store `data` by content hash and index it under `key`; atomic, durable."""
        if ext not in EXTENSIONS:
            raise RenderError(f"cannot store .{ext} audio")
        self._ensure()
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / f"{sha}.{ext}"
        if not (path.is_file() and path.stat().st_size == len(data)):
            self._write_atomic(path, data)
        earlier = self._earlier(key, sha)
        entry = {"sha256": sha, "ext": ext, "size": len(data), "duration_ms": duration_ms, **meta}
        if earlier:
            entry["earlier"] = list(earlier)
        self._write_atomic(
            self.index_dir / f"{key}.json", json.dumps(entry, ensure_ascii=False).encode()
        )
        return Clip(sha, path, len(data), duration_ms, earlier)

    def _earlier(self, key: str, sha: str) -> tuple[str, ...]:
        """The blobs `key` named before, newest first, once `sha` replaces them."""
        try:
            entry = json.loads((self.index_dir / f"{key}.json").read_text("utf-8"))
            names = [entry["sha256"], *entry.get("earlier", ())]
        except (OSError, ValueError, KeyError, TypeError):
            return ()
        kept = [n for n in dict.fromkeys(names) if isinstance(n, str) and n != sha]
        return tuple(kept[:_EARLIER_KEPT])

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    def prune(self, older_than: float, *, now: float | None = None) -> int:
        """Drop index entries unused for `older_than` s, blobs no entry names, dead temp files.

        Returns how many files were removed.
        """
        if not self.root.is_dir():
            return 0
        now = time.time() if now is None else now
        removed = 0
        live: set[str] = set()
        for entry_path in self.index_dir.glob("*.json") if self.index_dir.is_dir() else ():
            try:
                stat = entry_path.stat()
                entry = json.loads(entry_path.read_text("utf-8"))
            except (OSError, ValueError):
                continue
            if now - stat.st_mtime > older_than:
                entry_path.unlink(missing_ok=True)
                removed += 1
            else:
                live.add(f"{entry.get('sha256')}.{entry.get('ext')}")
        for path in [*self.root.iterdir(), *self._index_tmp()]:
            if not path.is_file():
                continue
            age = now - path.stat().st_mtime
            if path.name.startswith(_TMP_PREFIX):
                if age > _STALE_TMP_S:
                    path.unlink(missing_ok=True)
                    removed += 1
            elif path.name not in live and age > older_than:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _index_tmp(self) -> list[Path]:
        return list(self.index_dir.glob(f"{_TMP_PREFIX}*")) if self.index_dir.is_dir() else []
