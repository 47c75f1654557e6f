"""Notice edits to the config files and ask for one reload once they have been quiet for a while.

Pure polling of (inode, size, mtime, ctime): no inotify dependency, works on any filesystem, and
a few stat calls per second cost nothing. An editor's save is several writes (or a rename over the
file), so the reload waits until nothing has changed for `debounce` seconds; a half-saved file is
never loaded on purpose, and a broken one is rejected by the reload itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

log = logging.getLogger(__name__)

# A file's identity and content version; None while it is missing (mid-rename) or unreadable.
Stamp = tuple[int, int, int, int] | None
# A directory of include globs: the YAML names in it, so a NEW included file is noticed. Only YAML
# names count: an editor's swap and backup files come and go beside the config on every edit.
DirStamp = frozenset[str]
YAML_SUFFIXES = (".yaml", ".yml")


def _stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _dir_stamp(path: Path) -> DirStamp:
    try:
        return frozenset(p.name for p in path.iterdir() if p.suffix in YAML_SUFFIXES)
    except OSError:
        return frozenset()


def parent_dirs(files: Sequence[Path]) -> list[Path]:
    """The directories holding `files`: a good `dirs` for a config whose includes are globs."""
    return sorted({p.parent for p in files})


class ConfigWatcher:
    """Call `on_change()` once per burst of edits to `files()` (or to the contents of `dirs()`).

    Both callables are re-read on every poll, so after a reload that adds an include the new
    file is watched too. A path that merely joins or leaves the watched set is not an edit.
    """

    def __init__(  # noqa: PLR0913 - two sources, one sink, two timings, one test seam
        self,
        files: Callable[[], Sequence[Path]],
        on_change: Callable[[], Awaitable[object]],
        *,
        dirs: Callable[[], Sequence[Path]] | None = None,
        interval: float = 1.0,
        debounce: float = 2.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._files = files
        self._dirs = dirs
        self._on_change = on_change
        self.interval = interval
        self.debounce = debounce
        self._clock = clock
        self._files_seen: dict[Path, Stamp] = {}
        self._dirs_seen: dict[Path, DirStamp] = {}
        self._changed_at: float | None = None
        self.changes_fired = 0

    def baseline(self) -> None:
        """Remember the current state as unchanged."""
        self._files_seen = {p: _stamp(p) for p in self._files()}
        self._dirs_seen = {d: _dir_stamp(d) for d in (self._dirs() if self._dirs else ())}
        self._changed_at = None

    def poll(self, now: float) -> bool:
        """Look once; True when a change has been quiet for `debounce` seconds and is now due."""
        files = {p: _stamp(p) for p in self._files()}
        dirs = {d: _dir_stamp(d) for d in (self._dirs() if self._dirs else ())}
        changed = _differs(self._files_seen, files) or _differs(self._dirs_seen, dirs)
        self._files_seen, self._dirs_seen = files, dirs
        if changed:
            self._changed_at = now  # still being written: restart the quiet period
            return False
        if self._changed_at is not None and now - self._changed_at >= self.debounce:
            self._changed_at = None
            return True
        return False

    @property
    def pending(self) -> bool:
        return self._changed_at is not None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = self._clock or loop.time
        self.baseline()
        while True:
            await asyncio.sleep(self.interval)
            if not self.poll(clock()):
                continue
            log.info("config files changed; reloading")
            self.changes_fired += 1
            try:
                await self._on_change()
            except BroadcastdError as exc:
                # The reload reports its own problems; the watcher only has to keep watching.
                log.error("reload after a file change failed: %s", exc)
            # Edits made while the reload ran are still seen: poll() compares against the pre-reload
            # stamps, and the next poll starts a new quiet period if anything moved.


def _differs(before: Mapping[Path, object], after: Mapping[Path, object]) -> bool:
    """A watched path's stamp changed. Paths joining or leaving the set come from a reload, not an
    edit (an edited or deleted file keeps its place in the set and changes its stamp)."""
    return any(key in after and after[key] != value for key, value in before.items())
