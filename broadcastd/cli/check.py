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
from broadcastd.transport import pki

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
    out += tls_warnings(loaded, dt.datetime.now(dt.UTC))
    return out + plan_warnings(loaded, today) + speech_warnings(loaded)


def tls_warnings(loaded: LoadedConfig, now: dt.datetime) -> list[Problem]:
    """The speakers' TLS listener: its certificates exist, cover `broker.public` and are not
    about to expire (speakers refuse an expired one, and the commune goes silent)."""
    broker = loaded.config.broker
    if broker.public is None or broker.mode != "embedded":
        return []
    loc = loaded.where(("broker", "public"))

    def warn(message: str, value: object) -> Problem:
        return Problem(loc.file, loc.line, loc.col, "broker.public", message, value)

    found = pki.status(pki.TlsFiles.for_config(loaded.config))
    out: list[Problem] = []
    for name, info in found.items():
        if isinstance(info, pki.PkiError):
            if name == "ca" or not isinstance(found["ca"], pki.PkiError):
                out.append(warn(f"{info} before `run`", name))
            continue
        days = info.days_left(now)
        if info.near_expiry(now):
            state = "has expired" if days <= 0 else f"expires in {days:.0f} days"
            fix = "`broadcastd tls renew`" if name == "server" else "a new CA and new bundles"
            out.append(warn(f"the {name} certificate {state}: {fix}", f"{info.not_after:%Y-%m-%d}"))
        missing = info.missing(broker.public) if name == "server" else []
        if missing:
            out.append(
                warn(
                    "the server certificate does not name it: run `broadcastd tls renew`, then"
                    " reload",
                    ", ".join(missing),
                )
            )
    return out


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
