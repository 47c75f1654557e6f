"""A speaker's state file, rewritten in place: two slots, each either whole or detectably torn.

A speaker saves its state before acting on it, several times per bulletin. The usual atomic
rewrite (write a new file, fsync it, rename it over the old one, fsync the directory) creates
and deletes a file every time; here saves alternate between two files created once,
`state.json` and `state.1.json`, each overwritten in place and synced. Each holds a generation
number and the sha256 of the state it carries, so a save torn by a power cut is recognised on the
next start and the other slot, one save older and complete, is used instead. A `state.json`
written by an older version (the bare state, replaced atomically) loads as generation 0. Both
files are created (empty) when the speaker prepares its cache_dir, so no save creates a file.

Blocking; one owner (the NodeStore, under its lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

SLOT_NAMES = ("state.json", "state.1.json")  # generation g lives in slot g % 2


class TornSlotError(Exception):
    """A slot that does not hold one complete save."""


class StateFile:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.slots = tuple(directory / name for name in SLOT_NAMES)
        self.generation = 0
        self._sizes = [-1, -1]  # bytes in each slot file; -1: not created yet

    def prepare(self) -> None:
        """Create the slot files that do not exist yet (empty: never saved into), once, at start:
        a save then only overwrites a file, and the directory is synced here instead."""
        created = False
        for index, path in enumerate(self.slots):
            if self._sizes[index] < 0:
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                    created = True
                self._sizes[index] = path.stat().st_size
        if created:
            fsync_dir(self.directory)

    def load(self) -> dict[str, Any] | None:
        """The newest complete state; None if none was ever saved. BroadcastdError if state
        files exist but none is complete (never start from nothing: that could replay)."""
        found: list[tuple[int, dict[str, Any]]] = []
        problems: list[str] = []
        for index, path in enumerate(self.slots):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BroadcastdError(f"{path}: unreadable node state: {exc.strerror}") from None
            self._sizes[index] = len(raw)
            if not raw:
                continue  # created by prepare(), never saved into (or not yet when power went)
            try:
                found.append(_decode(raw))
            except TornSlotError as exc:
                problems.append(f"{path}: {exc}")
        if not found:
            if problems:
                raise BroadcastdError("unreadable node state: " + "; ".join(problems))
            return None
        for problem in problems:  # the other slot is complete: a save was cut short
            log.warning("node state: %s; using the other, complete copy", problem)
        self.generation, state = max(found, key=lambda pair: pair[0])
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` as the next generation into the older slot and sync it. OSError if the
        disk refuses; the newest complete state is then still the one saved before."""
        body = _canonical(state)
        generation = self.generation + 1
        digest = hashlib.sha256(body).hexdigest().encode()
        data = b'{"generation":%d,"sha256":"%s","state":%s}' % (generation, digest, body)
        index = generation % 2
        created = self._sizes[index] < 0
        fd = os.open(self.slots[index], os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, data, 0)
            if len(data) < self._sizes[index] or created:  # created: or left by an older run
                os.ftruncate(fd, len(data))
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.directory)  # a new file's name must survive a power cut too
        self._sizes[index] = len(data)
        self.generation = generation


def _canonical(state: dict[str, Any]) -> bytes:
    """The bytes a slot's sha256 covers: the state as compact JSON with sorted keys."""
    return json.dumps(state, sort_keys=True, separators=(",", ":")).encode()


def _decode(raw: bytes) -> tuple[int, dict[str, Any]]:
    """(generation, state) of one slot; TornSlotError if it is torn or not a state file."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise TornSlotError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise TornSlotError(f"not a JSON object but {type(doc).__name__}")
    if "sha256" not in doc:
        return 0, doc  # an older version's bare state, written atomically: whole by design
    state, generation = doc.get("state"), doc.get("generation")
    if not isinstance(state, dict) or not isinstance(generation, int):
        raise TornSlotError("no generation or state in it")
    body = _canonical(state)
    if hashlib.sha256(body).hexdigest() != doc["sha256"]:
        raise TornSlotError("its sha256 does not match its state")
    return generation, state


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new or renamed file's name) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
