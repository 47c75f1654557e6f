"""Recorded ad-hoc announcements: the files `announce --audio` sends, kept before anything plays.

Officials record a bulletin in Dao, Tày or H'Mông on a phone (no TTS speaks those languages) and
send it with `announce --audio LANG=FILE`; the bytes arrive in the control request (requests.py).
Before the daemon answers, each file is written to `state_dir/recordings/<sha256>.<ext>` (0600 in
a 0700 directory, fsynced, then renamed into place), examined (render/recording.py: its container
told by its bytes, ffprobe, a decode bounded by `audio.max_recording`) and rendered into the clip
store like every clip; Operations journals its sha256 and who sent it. The name is the content's
hash and the suffix what the bytes are: nothing the sender called the file is used. A restart
mid-request loses nothing that was accepted: the file and the journal entry naming it are on disk
first, and once a playlist is journaled its clip is in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd.errors import RenderError
from broadcastd.models import PlanItem
from broadcastd.render.recording import examine

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broadcastd.render.renderer import Renderer

_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0  # a temp file this old belongs to a request the daemon died in


@dataclass(frozen=True, slots=True)
class Upload:
    """A recording's bytes as the request carried them, for one language: not yet examined."""

    lang: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Recording:
    """One language's recording, kept in the spool and examined."""

    lang: str
    sha256: str
    path: Path
    size: int
    seconds: float
    format: str  # the container, as its bytes say: M4A, AMR, Ogg, MP3, WAV, ...
    codec: str

    def describe(self) -> dict[str, object]:
        """What the journal and the reply say of it."""
        return {
            "lang": self.lang,
            "sha256": self.sha256,
            "bytes": self.size,
            "seconds": round(self.seconds, 1),
            "format": self.format,
            "codec": self.codec,
        }

    def item(self, announcement: str, title: str, priority: str) -> PlanItem:
        """The recording as an item of `announcement`'s plans."""
        return PlanItem(
            announcement=announcement,
            title=title,
            category="announcement" if priority != "emergency" else "emergency",
            lang=self.lang,
            kind="recording",
            priority=priority,
            duration_s=self.seconds,
            recording=self.path,
        )


class Recordings:
    """The spool of accepted recordings and the checks each one passes on the way in."""

    def __init__(self, root: Path, renderer: Renderer) -> None:
        self.root = root
        self.renderer = renderer
        # One upload examined and rendered at a time: each runs ffmpeg, and the daemon's cores
        # are also rendering bulletins.
        self._one_at_a_time = asyncio.Lock()

    async def accept(
        self, uploads: Sequence[Upload], *, max_seconds: float
    ) -> tuple[Recording, ...]:
        """Keep, examine and render every upload; RenderError (one line) for the first that
        cannot be played. A refused file is not kept."""
        async with self._one_at_a_time:
            return tuple([await self._accept(u, max_seconds) for u in uploads])

    async def _accept(self, upload: Upload, max_seconds: float) -> Recording:
        what = f"the {upload.lang} recording"
        sha256 = hashlib.sha256(upload.data).hexdigest()
        try:
            staged = await asyncio.to_thread(self._stage, upload.data)
        except OSError as exc:  # a full disk, most likely: say so instead of "internal error"
            raise RenderError(f"{what} cannot be kept in {self.root}: {exc.strerror}") from None
        try:
            found = await examine(staged, max_seconds=max_seconds, what=what)
            path = await asyncio.to_thread(self._keep, staged, f"{sha256}.{found.container.ext}")
        except OSError as exc:
            raise RenderError(f"{what} cannot be kept in {self.root}: {exc.strerror}") from None
        finally:
            await asyncio.to_thread(staged.unlink, missing_ok=True)
        recording = Recording(
            upload.lang,
            sha256,
            path,
            len(upload.data),
            found.seconds,
            found.container.label,
            found.codec,
        )
        try:  # loudness and encoding now, so a file that cannot be rendered is refused here
            await self.renderer.clip_for(recording.item("recording", "", "normal"))
        except RenderError as exc:
            raise RenderError(f"{what} cannot be rendered: {exc}") from None
        return recording

    def _stage(self, data: bytes) -> Path:
        """`data` in a new owner-only file in the spool, on disk before anything reads it."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self._sweep()
        fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.root)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def _keep(self, staged: Path, name: str) -> Path:
        """The staged file linked under its content's name, the link made durable."""
        path = self.root / name
        if not path.exists():  # else it holds these very bytes already (the name is their hash)
            os.link(staged, path)
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return path

    def _sweep(self) -> None:
        now = time.time()
        for path in self.root.glob(f"{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > _STALE_TMP_S:
                    path.unlink()
