"""Codec: MP3 32 kbit/s against Opus 24 and 16 kbit/s for the example commune's bulletins.

System: the example commune (config/sang-moc.yaml and its announcements), a week of its slots,
every distinct clip rendered from nothing (espeak-ng for the text, the synthetic recordings
for Dao and Tày; a temporary cache per codec) by the daemon's own renderer, one codec after the
other in one run. Per codec: audio bytes per minute of speech (what a speaker's 3G link has to
carry) and render seconds (espeak-ng, loudness, encode, verification: the controller's cost).

Prints `# codec <name>: ...` per codec, then `codec opus24 bytes: ratio=<opus/mp3> target=1.0`
and `codec opus24 render: ratio=<opus/mp3 seconds> target=1.5` (Opus must not cost the
controller much more), and the same for opus16.
Render seconds are the median of --rounds runs, the codecs interleaved.
Usage: `python benchmarks/codec.py [--days 7] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broadcastd.config import Config, load_config
from broadcastd.plan.slotplan import build_plan
from broadcastd.render.renderer import build_renderer

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "sang-moc.yaml"
CODECS = {"mp3-32k": ("mp3", "32k"), "opus24": ("opus", "24k"), "opus16": ("opus", "16k")}
RENDER_TARGET = 1.5
DAY = dt.date(2026, 11, 30)  # within every announcement's window in the example


def variant(config: Config, state: Path, fmt: str, bitrate: str) -> Config:
    audio = config.audio.model_copy(update={"format": fmt, "bitrate": bitrate})
    return config.model_copy(update={"audio": audio, "state_dir": state})


async def measure(config: Config, days: int) -> tuple[int, float, float]:
    """(bytes, minutes of audio, render seconds) for every distinct clip of `days` of slots."""
    loaded = load_config(EXAMPLE)
    plans = build_plan(loaded, DAY, days)
    renderer = build_renderer(config, engines=["espeak"])
    started = time.monotonic()
    summary = await renderer.render_plans(plans)
    elapsed = time.monotonic() - started
    if summary.failed:
        raise SystemExit(f"codec: clips failed: {summary.failed[:3]}")
    clips = {}
    for plan in plans:
        for item in plan.items:
            clip = await renderer.clip_for(item)
            clips[clip.sha256] = clip
    size = sum(c.size for c in clips.values())
    minutes = sum(c.duration_ms for c in clips.values()) / 60_000
    return size, minutes, elapsed


async def run(days: int, rounds: int) -> None:
    base = load_config(EXAMPLE).config
    results: dict[str, tuple[int, float, float]] = {}
    runs: dict[str, list[tuple[int, float, float]]] = {name: [] for name in CODECS}
    for _ in range(rounds):  # interleaved, so a busy moment of the machine hits every codec
        for name, (fmt, bitrate) in CODECS.items():
            with tempfile.TemporaryDirectory(prefix=f"broadcastd-codec-{name}-") as tmp:
                runs[name].append(await measure(variant(base, Path(tmp), fmt, bitrate), days))
    for name, measured in runs.items():
        size, minutes, _ = measured[0]
        seconds = statistics.median(m[2] for m in measured)
        results[name] = (size, minutes, seconds)
        print(
            f"# codec {name}: {size / minutes / 1000:.0f} kB per minute of audio "
            f"({size} B for {minutes:.1f} min in {days} days of slots), rendered in {seconds:.2f} s"
            f" (median of {rounds})"
        )
    mp3_size, mp3_minutes, mp3_seconds = results["mp3-32k"]
    for name in ("opus24", "opus16"):
        size, minutes, seconds = results[name]
        per_minute = (size / minutes) / (mp3_size / mp3_minutes)
        print(f"codec {name} bytes: ratio={per_minute:.2f} target=1.0")
        print(f"codec {name} render: ratio={seconds / mp3_seconds:.2f} target={RENDER_TARGET}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.days, args.rounds))


if __name__ == "__main__":
    main()
