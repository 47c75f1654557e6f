"""`announce`, `cancel`, `stop`, `approve`, `volume`, `volume-schedule`: requests to the running
daemon over its control socket.

Only the daemon holds the signing key and the render cache, so these commands never sign anything
themselves; without a running daemon they say so and exit 1. `announce --audio LANG=FILE` sends
the recording's bytes in the request (DESIGN.md §9). Every request carries `--operator`;
the daemon journals it as claimed, beside the Unix user the kernel proves, and the command says
which is which on stderr (stdout stays the daemon's JSON answer).
"""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadcastd.config import load_config
from broadcastd.config.fields import LANG_RULE, is_lang_tag
from broadcastd.controller.controlsocket import request
from broadcastd.controller.requests import (
    MAX_RECORDING_BYTES,
    RequestError,
    recordings_too_big,
    volume_schedule,
)
from broadcastd.errors import EX_OK, UsageError

if TYPE_CHECKING:
    import argparse

REQUEST_TIMEOUT_S = 60.0  # an announcement is rendered before the daemon answers


def _id_list(flag: str, value: str | None) -> None:
    """Refuse an empty list or item: the daemon reads an empty `--hamlets` as every hamlet, so
    `--hamlets "$UNSET"` in a script would have reached the whole commune."""
    if value is not None and not all(part.strip() for part in value.split(",")):
        also = ", or all" if flag == "--hamlets" else ""
        raise UsageError(f"{flag} takes ids separated by commas{also}, got: {value!r}")


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    _id_list("--hamlets", getattr(args, "hamlets", None))
    _id_list("--nodes", getattr(args, "nodes", None))
    if args.command == "announce":
        if args.exercise and args.priority == "emergency":
            raise UsageError(
                "an exercise is never an emergency: drop --priority emergency or --exercise"
            )
        if not args.text and not args.audio:
            raise UsageError("announce needs --text, --audio LANG=FILE or both")
        return {
            "cmd": "announce",
            "text": args.text,
            "audio": read_recordings(args.audio) or None,
            "lang": args.lang,
            "hamlets": args.hamlets,
            "priority": args.priority,
            "now": args.now,
            "exercise": args.exercise,
            "operator": args.operator,
        }
    if args.command == "cancel":
        if args.say and args.correction:
            raise UsageError("give either --say TEXT or --correction, not both")
        return {
            "cmd": "cancel",
            "id": args.id,
            "say": args.say,
            "correction": args.correction,
            "operator": args.operator,
        }
    if args.command == "stop":
        if args.all == (args.hamlets is not None):
            # A bare `stop` (say, to see its usage) used to silence the whole commune.
            raise UsageError("stop needs --hamlets a,b or --all (every speaker), not both")
        hamlets = "all" if args.all else args.hamlets
        return {"cmd": "stop", "hamlets": hamlets, "operator": args.operator}
    if args.command == "volume":
        return {
            "cmd": "volume",
            "level": args.level,
            "hamlets": args.hamlets,
            "nodes": args.nodes,
            "operator": args.operator,
        }
    if args.command == "volume-schedule":
        return {
            "cmd": "volume-schedule",
            "schedule": _schedule(args.levels, configured=args.configured),
            "hamlets": args.hamlets,
            "operator": args.operator,
        }
    return {"cmd": "approve", "id": args.id, "operator": args.operator}


def _schedule(levels: list[str], *, configured: bool) -> dict[str, int] | None:
    """`HH:MM=LEVEL` arguments as the request's schedule (the daemon checks the values);
    None with --configured."""
    if configured == bool(levels):
        raise UsageError("give levels by time of day (such as 06:00=80 20:00=60) or --configured")
    schedule: dict[str, int] = {}
    for spec in levels:
        at, sep, level = spec.partition("=")
        if not sep or not level.strip().isdigit():
            raise UsageError(
                f"a level by time of day is HH:MM=LEVEL, such as 06:00=80, got: {spec!r}"
            )
        schedule[at.strip()] = int(level)
    if configured:
        return None
    try:  # the daemon's own check, so a bad time or level is a usage error before it is sent
        volume_schedule(schedule)
    except RequestError as exc:
        raise UsageError(str(exc)) from None
    return schedule


def read_recordings(specs: list[str]) -> dict[str, str]:
    """`LANG=FILE` arguments as the request's `audio` object: each file's bytes in base64.

    Only the bytes travel: the daemon names the file by its content and tells its format by its
    bytes. Sizes are checked here too, so a file that is too big is not sent first."""
    files: dict[str, Path] = {}
    for spec in specs:
        lang, sep, name = spec.partition("=")
        if not sep or not name:
            raise UsageError(f"--audio takes LANG=FILE, such as dao=ban-tin.m4a, got: {spec!r}")
        if not is_lang_tag(lang):
            raise UsageError(f"--audio {spec!r}: {LANG_RULE}")
        if lang in files:
            raise UsageError(f"--audio: two recordings for {lang!r}; give one per language")
        files[lang] = Path(name)
    sizes = {lang: _size(path) for lang, path in files.items()}
    if sum(sizes.values()) > MAX_RECORDING_BYTES:
        raise UsageError(recordings_too_big(sum(sizes.values())))
    return {
        lang: base64.b64encode(_read(path, sizes[lang])).decode() for lang, path in files.items()
    }


def _size(path: Path) -> int:
    try:
        st = path.stat()
    except OSError as exc:
        raise UsageError(f"--audio: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read; a directory is no recording
        raise UsageError(f"--audio: {path} is not a regular file")
    return st.st_size


def _read(path: Path, size: int) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(size + 1)
    except OSError as exc:
        raise UsageError(f"--audio: cannot read {path}: {exc.strerror}") from None
    if len(data) != size:
        raise UsageError(f"--audio: {path} changed while it was read")
    return data


def run(args: argparse.Namespace) -> int:
    payload = _payload(args)
    config = load_config(args.config, probe_media=False).config
    result = asyncio.run(
        request(config.state_dir / "broadcastd.sock", payload, timeout=REQUEST_TIMEOUT_S)
    )
    print(json.dumps(result, ensure_ascii=False, indent=2))
    recorded = result.get("recorded")
    if isinstance(recorded, dict):
        print(attribution(recorded), file=sys.stderr)
    return EX_OK


def attribution(recorded: dict[str, Any]) -> str:
    """What the journal recorded of who asked, said honestly: the operator name is only claimed;
    the Unix user is proven by the kernel."""
    operator, user = recorded.get("operator"), recorded.get("unix_user")
    claimed = f"operator {operator!r} as given (not verified)" if operator else "no operator named"
    proven = f"Unix user {user!r} (verified by the kernel)" if user else "an unknown Unix user"
    return f"journaled: {claimed}, from {proven}"
