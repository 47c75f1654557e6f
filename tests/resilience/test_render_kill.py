"""Render killed -9 again and again: no truncated clip is ever in the store or served.

Each round starts a renderer process on the same store (`support.rendering.spawn_render`: 16
espeak-ng clips, one at a time) and SIGKILLs it at a random moment. After every
kill, everything under a content-hash name hashes to that name and every index entry names a
complete clip; clips done before a kill are reused, never rendered again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import time

from support.rendering import KILL_CLIPS as CLIPS
from support.rendering import kill_items, plans, renderer, spawn_render
from support.soak import count

from broadcastd.render.store import AudioStore
from broadcastd.render.tts import EspeakEngine


def _check_store(store) -> int:
    """Every blob is whole; every index entry points at a whole blob. Returns entries."""
    for path in store.iterdir():
        if path.is_file() and len(path.stem) == 64 and not path.name.startswith("."):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem, path.name
    entries = list(store.glob("index/*.json"))
    audio = AudioStore(store)
    for entry in entries:
        data = json.loads(entry.read_text(encoding="utf-8"))
        assert audio.lookup(entry.stem) is not None, entry.name
        blob = store / f"{data['sha256']}.{data['ext']}"
        assert blob.stat().st_size == data["size"]
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == data["sha256"]
    return len(entries)


def test_render_killed_repeatedly_never_leaves_a_truncated_clip(tmp_path):
    seed = int(os.environ.get("BROADCASTD_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    kills = count(3, 20)
    store = tmp_path / "audio"
    done_before = 0
    progress: list[int] = []
    for k in range(kills):
        proc = spawn_render(tmp_path)
        # kill mid-clip: shortly after the next clip starts being written
        time.sleep(rng.uniform(0.3, 1.2))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done = _check_store(store) if store.exists() else 0
        assert done >= done_before, f"kill {k}: clips lost ({done_before} -> {done})"
        progress.append(done)
        done_before = done
        if done == CLIPS:  # everything rendered: start over so later kills land mid-render
            for path in store.glob("index/*.json"):
                path.unlink()
            done_before = 0
    r = renderer(tmp_path, [EspeakEngine(5.0)])
    summary = asyncio.run(r.render_plans(plans(kill_items()), chimes=False))
    assert summary.failed == []
    assert summary.cached == done_before
    assert summary.cached + summary.rendered.get("espeak", 0) == CLIPS
    assert _check_store(store) == CLIPS
    print(f"render kill: {kills} SIGKILLs (seed {seed}), clips indexed after each: {progress}")
