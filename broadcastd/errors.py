"""The exception hierarchy, and how the command lines print an expected failure (no traceback)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_CONFIG = 78


class BroadcastdError(Exception):
    """An expected failure: printed as one clear message, never as a traceback."""

    exit_code = EX_FAILURE


class UsageError(BroadcastdError):
    exit_code = EX_USAGE


@dataclass(frozen=True, slots=True)
class Problem:
    """One config finding, printed as `FILE:LINE:COL: path: message, got: value`."""

    file: Path
    line: int
    col: int
    path: str
    message: str
    value: object = None
    has_value: bool = True

    def __str__(self) -> str:
        # Always one line: a file name, a key or a message may carry what a hostile or broken
        # file put there (a newline in a key would otherwise forge a second finding).
        where = f"{one_line(str(self.file))}:{self.line}:{self.col}"
        message = one_line(self.message)
        head = f"{where}: {one_line(self.path)}: {message}" if self.path else f"{where}: {message}"
        if not self.has_value:
            return head
        return f"{head}, got: {format_value(self.value)}"


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters shown as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def format_value(value: object) -> str:
    """Show a received value briefly: strings quoted, long ones cut."""
    text = repr(value) if isinstance(value, str) else one_line(_plain(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _plain(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ConfigError(BroadcastdError):
    """The configuration is invalid; carries every problem found, not just the first."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RenderError(BroadcastdError):
    """An announcement could not be turned into audio by any engine."""


class ProtocolError(BroadcastdError):
    """An envelope is malformed, unsigned, forged, expired or a replay; `reason` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class JournalError(BroadcastdError):
    """The journal cannot be opened or written (corrupt, newer schema, disk full)."""


class LinkError(BroadcastdError):
    """The MQTT link could not complete an operation (disconnected, timed out)."""


class DaemonNotRunningError(BroadcastdError):
    """A command needs the running daemon's control socket, and there is none."""


def handled_error(group: ExceptionGroup[Exception]) -> Exception:
    """The BroadcastdError inside a task group's failure, which callers handle (e.g. a LinkError
    before the first connect); the group itself if there is none (a bug: let it end the task)."""
    for exc in group.exceptions:
        found = handled_error(exc) if isinstance(exc, ExceptionGroup) else exc
        if isinstance(found, BroadcastdError):
            return found
    return group


def report_failure(prog: str, exc: BroadcastdError) -> int:
    """Print an expected failure without a traceback; return its exit code.

    A config error lists every problem, one `FILE:LINE:COL: path: message, got: value` per line,
    and counts them when there are several (one problem is one line: a unit's status shows it).
    """
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if len(exc.problems) > 1:
            print(f"{len(exc.problems)} errors in configuration", file=sys.stderr)
    else:
        print(f"{prog}: {exc}", file=sys.stderr)
    return exc.exit_code
