"""ffprobe of recorded clips and chimes, with a small cache in `state_dir`.

Every `check`, `render` and reload probes each recording (it must exist and decode; the plan needs
its real length). An ffprobe costs ~50 ms, so results are remembered by (path, size, mtime): an
unchanged file is not probed again. Failures are never cached; the cache is best effort.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)

FFPROBE_TIMEOUT_S = 10.0
CACHE_NAME = "media-probe.json"
MAX_ENTRIES = 10_000


def probe_all(paths: Iterable[Path], cache_dir: Path | None) -> dict[Path, tuple[float, str]]:
    """(seconds, "") or (0, reason) for each path; unchanged files come from the cache."""
    unique = sorted(set(paths))
    cache = _load(cache_dir)
    results: dict[Path, tuple[float, str]] = {}
    todo: list[Path] = []
    for path in unique:
        key = _key(path)
        if key is not None and key in cache:
            results[path] = (cache[key], "")
        else:
            todo.append(path)
    if todo:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results.update(zip(todo, pool.map(probe_duration, todo), strict=True))
        fresh: dict[str, float] = {}
        for path in todo:
            seconds, error = results[path]
            key = _key(path)
            if key is not None and not error:
                fresh[key] = seconds
        if fresh and cache_dir is not None:
            _save(cache_dir, {**cache, **fresh})
    return results


def _key(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _load(cache_dir: Path | None) -> dict[str, float]:
    if cache_dir is None:
        return {}
    try:
        data = json.loads((cache_dir / CACHE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0
    }


def _save(cache_dir: Path, entries: dict[str, float]) -> None:
    if len(entries) > MAX_ENTRIES:
        entries = dict(list(entries.items())[-MAX_ENTRIES:])
    if not cache_dir.is_dir():
        return  # `check` must not create the daemon's state_dir as a side effect
    try:
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".probe-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entries, fh)
        Path(tmp).replace(cache_dir / CACHE_NAME)
    except OSError as exc:  # a read-only state_dir only costs the next run its speed
        log.debug("media probe cache not written: %s", exc)


def probe_duration(path: Path) -> tuple[float, str]:
    """(seconds, "") for a decodable audio file, or (0, reason)."""
    if not path.exists():
        return 0.0, f"file not found (looked for {path})"
    if not path.is_file():
        # ffprobe would wait forever on a FIFO, and a directory is never a clip
        return 0.0, f"not a regular file (looked at {path})"
    try:
        proc = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_type",
                "-of",
                "json",
                str(path),
            ],
            capture_output=True,
            timeout=FFPROBE_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        return 0.0, "cannot check audio: ffprobe (ffmpeg) is not installed"
    except subprocess.TimeoutExpired:
        return 0.0, "audio file could not be read in time"
    try:
        info = json.loads(proc.stdout or b"{}")
        has_audio = any(s.get("codec_type") == "audio" for s in info.get("streams", []))
        seconds = float(info.get("format", {}).get("duration", 0.0))
    except (ValueError, TypeError, AttributeError):
        has_audio, seconds = False, 0.0
    if proc.returncode != 0 or not has_audio or seconds <= 0:
        return 0.0, "not a decodable audio file"
    return seconds, ""
