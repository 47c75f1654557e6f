"""`broadcastd check`: validate a config and report every error and warning at once.

Findings go to stderr, one per line (`FILE:LINE:COL: path: message, got: value`; warnings carry
`warning:` after the location), like every other command's config errors. The one-line summary
goes to stdout. Exit 0 when there are no errors (warnings allowed), 78 on errors, or on warnings
with `--strict`.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.errors import EX_CONFIG, EX_OK, ConfigError, Problem, format_value
from broadcastd.plan.slotplan import plan_warnings
from broadcastd.render.speechcheck import speech_warnings

if TYPE_CHECKING:
    import argparse

    from broadcastd.config import Config, LoadedConfig


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.config}: {_count(len(exc.problems), 'error')}")
        return EX_CONFIG
    config = loaded.config
    today = dt.datetime.now(config.commune.tz).date()
    warnings = config_warnings(loaded, today)
    for w in warnings:
        print(format_warning(w), file=sys.stderr)
    print(f"{args.config}: 0 errors, {_count(len(warnings), 'warning')} ({_sizes(config)})")
    return EX_CONFIG if warnings and args.strict else EX_OK


def config_warnings(loaded: LoadedConfig, today: dt.date) -> list[Problem]:
    """Everything `check` warns about: a missing signing key, the plan's warnings, then text
    that would still be read badly after normalisation."""
    out: list[Problem] = []
    key = loaded.config.signing.private_key_file
    if not key.exists():
        loc = loaded.where(("signing", "private_key_file"))
        out.append(
            Problem(
                loc.file,
                loc.line,
                loc.col,
                "signing.private_key_file",
                "key file does not exist; create it with `broadcastd keygen` before `run`",
                str(key),
            )
        )
    return out + plan_warnings(loaded, today) + speech_warnings(loaded)


def format_warning(w: Problem) -> str:
    """`FILE:LINE:COL: warning: path: message, got: value` (compiler style, grep-able)."""
    head = f"{w.file}:{w.line}:{w.col}: warning: "
    head += f"{w.path}: {w.message}" if w.path else w.message
    return f"{head}, got: {format_value(w.value)}" if w.has_value else head


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _sizes(config: Config) -> str:
    nodes = sum(len(h.nodes) for h in config.hamlets)
    households = sum(h.households for h in config.hamlets)
    return (
        f"{_count(len(config.hamlets), 'hamlet')}, {_count(nodes, 'node')}, "
        f"{households} households, {_count(len(config.announcements), 'announcement')}"
    )
