"""A speaker's acks on disk until the daemon confirms it journaled them (DESIGN.md §5, receipts).

`acks.jsonl` in cache_dir is a log: `{"n": N, "ack": "<payload>"}` when an ack is made and
`{"done": [N, ...]}` when a receipt names it; it is rewritten (a fresh file renamed over it) once
it holds only confirmed acks, keeping the next number (`{"next": N}`). A SIGKILL or crash of the
agent loses nothing that was appended (the OS has it); `sync()` makes the appended lines
durable against a power cut too, and the sender calls it (in a thread) before anything it holds
is published: an ack the daemon may count is never one the speaker can forget.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from broadcastd.node.statefile import fsync_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

log = logging.getLogger(__name__)

FILE = "acks.jsonl"
COMPACT_AFTER = 256  # lines: a speaker acks a few times a slot; rewrite rarely, stay small


class AckLog:
    """The outstanding acks of one node, by number, mirrored in `cache_dir/acks.jsonl`."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / FILE
        self.pending: dict[int, bytes] = {}
        self.next_n = 1
        self._lines = 0
        self._fh: Any = None
        self._dirty = False

    def open(self) -> None:
        """Read what an earlier run left (a torn last line is dropped) and append from there."""
        if self._fh is not None:
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            self._replay(line)
        self._fh = self.path.open("a", encoding="utf-8")
        if self.pending:
            log.info("%d ack(s) from an earlier run await the daemon's receipt", len(self.pending))

    def _replay(self, line: str) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            return  # a line torn by a power cut: that ack was never sent
        if not isinstance(entry, dict):
            return
        self._lines += 1
        if isinstance(entry.get("n"), int) and isinstance(entry.get("ack"), str):
            self.pending[entry["n"]] = entry["ack"].encode()
            self.next_n = max(self.next_n, entry["n"] + 1)
        elif isinstance(entry.get("done"), list):
            for n in entry["done"]:
                self.pending.pop(n, None)
        elif isinstance(entry.get("next"), int):
            self.next_n = max(self.next_n, entry["next"])

    def add(self, make: Callable[[int], bytes]) -> int:
        """Number a new ack, keep it (`make(n)` is its payload) and return its number."""
        self.open()
        n, self.next_n = self.next_n, self.next_n + 1
        payload = make(n)
        self.pending[n] = payload
        self._write({"n": n, "ack": payload.decode()})
        return n

    def confirm(self, numbers: Iterable[int]) -> list[int]:
        """Forget the acks a receipt names; returns those that were still kept."""
        self.open()
        done = [n for n in numbers if self.pending.pop(n, None) is not None]
        if done:
            self._write({"done": done})
            if not self.pending and self._lines >= COMPACT_AFTER:
                self._compact()
        return done

    @property
    def dirty(self) -> bool:
        """Lines were appended since the last `sync`."""
        return self._dirty

    def sync(self) -> None:
        """Make every appended line durable (blocking: call it in a thread)."""
        fh = self._fh
        if fh is not None and self._dirty:
            self._dirty = False
            with contextlib.suppress(ValueError):  # closed meanwhile
                os.fsync(fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _write(self, entry: dict[str, object]) -> None:
        self._fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._fh.flush()  # to the OS now: a crash of the agent loses nothing
        self._dirty = True
        self._lines += 1

    def _compact(self) -> None:
        """Nothing is outstanding: start a fresh file that remembers only the next number."""
        tmp = self.path.with_name(FILE + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps({"next": self.next_n}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._fh.close()
        tmp.replace(self.path)
        fsync_dir(self.path.parent)
        self._fh = self.path.open("a", encoding="utf-8")
        self._lines = 1
