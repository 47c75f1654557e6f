"""Plumbing of benchmarks/fanout.py: the fleet's cache trees, CPU accounting, worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# The simulated speakers' cache dirs, apart from the daemon's state_dir: a speaker's storage is
# its own board's, never the broker's disk. Beside it they paid for the broker's database, which
# mosquitto replaces after every pass of its loop (`autosave_on_changes`): on ext4 without a
# journal each file created in the same block group then scans past every inode deleted in the
# last seconds, measured here 0.30-0.37 ms per create instead of 0.016 ms. For the same reason
# no run deletes a fleet's files before the benchmark ends (see FleetTrees).
FLEET_TMP = "/var/tmp" if Path("/var/tmp").is_dir() else None  # noqa: S108 - a temp dir's parent


class FleetTrees:
    """The simulated speakers' cache trees of every run, deleted only when the benchmark ends.

    Deleting a run's ~5000 files (1000 agents' dirs, clips, partials, state files) right before
    the next run made each of that run's creates scan past them: ext4 without a journal skips
    inodes deleted in the last 5 s, or 305 s while their inode-table block is dirty, which the
    next run's creates in the same block group keep it. Measured here 0.6-1.0 ms per
    `PartialClip` open (on the agents' event loops, 0.6-1.0 s of CPU per run) instead of
    0.04-0.13 ms with the files kept; no speaker deletes 1000 caches a second before a slot.
    Between runs the files are truncated, which frees their blocks (disk use stays one run's)
    and keeps their inodes. The tree is deleted at the end, so a second benchmark started
    within ~5 minutes still meets those inodes: measured 0.15-0.5 ms per create then."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="broadcastd-fanout-fleet-", dir=FLEET_TMP))

    def new(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.root))

    @staticmethod
    def release(tree: Path) -> None:
        """Free a finished run's disk blocks; its files and dirs stay until `remove`."""
        for path in tree.rglob("*"):
            if path.is_file():
                os.truncate(path, 0)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each process (daemon, mosquitto, workers) spends between the clock's marks.

    Diagnostic only (stderr): shows whether the box, not one event loop, is the limit."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.marks: dict[str, dict[str, float]] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = {who: cpu_seconds(pid) for who, pid in self.pids.items()}

    def between(self, start: str, stop: str) -> str:
        a, b = self.marks[start], self.marks[stop]
        return " ".join(f"{who}={b[who] - a[who]:.1f}" for who in self.pids)


class Worker:
    """One `_fanout_worker.py` process; line-per-step over its stdin/stdout (see that module)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, job: dict[str, object]) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).with_name("_fanout_worker.py")),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(proc)
        worker.send(json.dumps(job))
        return worker

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None  # noqa: S101 - created with a pipe
        self.proc.stdin.write(line.encode() + b"\n")

    async def hear(self, limit_s: float) -> str:
        assert self.proc.stdout is not None  # noqa: S101 - created with a pipe
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), limit_s)
        except TimeoutError:
            raise SystemExit(f"fanout: worker {self.proc.pid} silent for {limit_s:.0f}s") from None
        if not line:
            raise SystemExit(f"fanout: worker {self.proc.pid} exited ({await self.proc.wait()})")
        return line.decode().strip()


async def all_say(workers: list[Worker], expected: str, limit_s: float) -> None:
    for line in await asyncio.gather(*(w.hear(limit_s) for w in workers)):
        if line != expected:
            raise SystemExit(f"fanout: a worker said {line!r}, expected {expected!r}")
