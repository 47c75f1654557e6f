"""The `broadcastd` command line. The only module that exits the process."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd import __version__
from broadcastd.errors import EX_FAILURE, EX_USAGE, BroadcastdError, report_failure
from broadcastd.localtime import use_log_zone

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

DEFAULT_CONFIG = Path("/etc/broadcastd/broadcastd.yaml")

# subcommand -> module under broadcastd.cli (imported only when used, so `check` stays fast)
COMMANDS: dict[str, str] = {
    "run": "run",
    "check": "check",
    "schedule": "schedule",
    "render": "render",
    "preview": "preview",
    "announce": "control",
    "cancel": "control",
    "stop": "control",
    "approve": "control",
    "volume": "control",
    "volume-schedule": "control",
    "nodes": "nodes",
    "report": "report",
    "keygen": "keygen",
    "tls": "tls",
    "acl": "acl",
    "node-config": "nodeconfig",
    "node-revoke": "noderevoke",
    "demo": "demo",
    "simulate": "simulate",
    "audit": "audit",
    "say": "say",
    "console": "console",
    "operator": "operator",
    "token": "token",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcastd", description="Commune loudspeaker bulletin controller"
    )
    parser.add_argument("--version", action="version", version=f"broadcastd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, help_text: str, config: Path | None = DEFAULT_CONFIG
    ) -> argparse.ArgumentParser:
        # A parent of its own per command: parents share their actions, so one command's
        # set_defaults(config=None) used to take the default config away from all of them.
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument(
            "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
        )
        common.add_argument("-c", "--config", type=Path, default=config, help="config YAML file")
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    _planning(add)
    _control(add)
    _fleet(add)
    p = add("audit", "verify the journal's hash chain")
    p.add_argument("action", choices=["verify"])
    # without -c: the built-in lexicon only, no config needed
    p = add("say", "print what the TTS engine will say for TEXT (and render it with --out)", None)
    p.add_argument("text", nargs="+", metavar="TEXT")
    p.add_argument("--lang", help="language (default: the commune's, or vi)")
    p.add_argument("--out", type=Path, help="also render it to this .mp3/.opus file")
    _console(add)
    return parser


def _console(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    add("console", "serve the web console on console.listen")
    p = add("operator", "manage console accounts (password from stdin or a prompt)")
    p.add_argument("action", choices=["add", "passwd", "remove", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["viewer", "operator", "approver"])
    p = add("token", "manage API tokens for other systems")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("name", nargs="?")
    p.add_argument("--scope", choices=["read"], default="read")


def _planning(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    add("run", "run the daemon")
    p = add("check", "validate the config and report every problem")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p = add("schedule", "preview what plays where")
    p.add_argument("--date", help="first date, YYYY-MM-DD (default: today)")
    p.add_argument("--days", type=int, default=1, help="number of days (default 1)")
    p.add_argument("--hamlet", help="only this hamlet id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("render", "render the audio the plan needs")
    p.add_argument("--date", help="render for this date instead of the next tts.render_ahead")
    p.add_argument("--force", action="store_true", help="render again even if cached")
    p = add("preview", "write what one hamlet will hear as one audio file and print its script")
    p.add_argument("--hamlet", required=True, help="the hamlet id")
    p.add_argument("--out", type=Path, required=True, help="audio file: .mp3, .wav, .opus, .ogg")
    p.add_argument("--date", help="YYYY-MM-DD (default: today, or tomorrow after the last slot)")
    p.add_argument("--slot", help="slot name (default: the next one)")


OPERATOR_HELP = (
    "your name, journaled as given (not verified; the Unix user is); required for cancel, stop"
    " and volume, and for emergencies, when emergency.approvals is 2"
)


def _control(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("announce", "send an announcement through the running daemon")
    p.add_argument("--text", help="text to speak (--text, --audio or both)")
    p.add_argument("--lang", default="vi", help="the text's language (default vi)")
    p.add_argument(
        "--audio",
        action="append",
        default=[],
        metavar="LANG=FILE",
        help="a recording in LANG (M4A/AAC, AMR, Opus/Ogg, MP3, WAV) for the hamlets that speak"
        " it; repeat for more languages",
    )
    p.add_argument("--hamlets", default="all", help="comma-separated hamlet ids, or all")
    p.add_argument("--priority", choices=["normal", "priority", "emergency"], default="priority")
    p.add_argument("--now", action="store_true", help="play at once instead of at the next slot")
    p.add_argument("--exercise", action="store_true", help="mark as an exercise (never emergency)")
    p.add_argument("--operator", help=OPERATOR_HELP)
    p = add("cancel", "cancel a playlist or request on every node")
    p.add_argument("id")
    p.add_argument("--say", help="a correction to announce at once")
    p.add_argument("--correction", action="store_true", help="say emergency.correction after it")
    p.add_argument("--operator", help=OPERATOR_HELP)
    p = add("stop", "silence nodes now; nothing issued before the stop plays there later")
    p.add_argument("--hamlets", help="comma-separated hamlet ids")
    p.add_argument("--all", action="store_true", help="every hamlet (kill switch)")
    p.add_argument("--operator", help=OPERATOR_HELP)
    p = add("approve", "approve a pending emergency request")
    p.add_argument("id")
    p.add_argument("--operator", required=True, help=OPERATOR_HELP)
    p = add("volume", "set the speakers' volume now (until the hamlet's volume schedule changes)")
    p.add_argument("level", type=_level, help="0 (silent) to 100 (loudest)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--hamlets", help="comma-separated hamlet ids, or all (the default)")
    where.add_argument("--nodes", help="comma-separated node ids")
    p.add_argument("--operator", help=OPERATOR_HELP)
    p = add(
        "volume-schedule",
        "set hamlets' volume by time of day for every playlist made from now on,"
        " instead of the config's volume:",
    )
    p.add_argument("levels", nargs="*", help="HH:MM=LEVEL from that time on, such as 06:00=80")
    p.add_argument("--configured", action="store_true", help="back to the config's volume:")
    p.add_argument("--hamlets", help="comma-separated hamlet ids, or all (the default)")
    p.add_argument("--operator", help=OPERATOR_HELP)


def _level(text: str) -> int:
    try:
        level = int(text)
    except ValueError:
        level = -1
    if not 0 <= level <= 100:
        msg = f"must be a whole number from 0 to 100, got: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return level


def _fleet(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("nodes", "list nodes and their reachability")
    p.add_argument("--hamlet")
    p.add_argument("--json", action="store_true")
    p = add("report", "households reached per slot and hamlet")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--date")
    g.add_argument("--month")
    g2 = p.add_mutually_exclusive_group()
    g2.add_argument("--json", action="store_true")
    g2.add_argument("--csv", action="store_true")
    p = add("keygen", "create the signing key and print its public key")
    p.add_argument(
        "--rotate",
        action="store_true",
        help="make a new signing key and announce it to every speaker (see the README's drill)",
    )
    p.add_argument(
        "--activate-in", help="with --rotate: when the new key starts signing (default 1h)"
    )
    p.add_argument(
        "--grace",
        help="with --rotate: how long after activation the old key stays trusted (default 7d)",
    )
    p.add_argument("--operator", help="with --rotate: your name, journaled as given")
    p = add("tls", "the commune CA and the speakers' TLS certificate (broker.public)")
    p.add_argument(
        "action",
        choices=["init", "renew", "show"],
        help="init: create the CA and certificate; renew: a new certificate from the same CA",
    )
    p = add("acl", "print mosquitto password and ACL entries")
    p.add_argument(
        "--out", type=Path, help="write passwd and acl (0600) into this directory (ours alone)"
    )
    p = add("node-config", "print a ready node.yaml for one speaker")
    p.add_argument("node")
    p.add_argument(
        "--out",
        type=Path,
        help="write node.yaml and password (0600) into this new directory (created 0700)",
    )
    p.add_argument(
        "--tar",
        type=Path,
        help="write node.yaml and password (0600) into this new tar file (.tar.gz: gzipped)",
    )
    p.add_argument(
        "--cache-dir", type=Path, help="cache_dir for node.yaml (relative: to node.yaml)"
    )
    p.add_argument(
        "--new-login",
        action="store_true",
        help="give the node a new password (a revoked one is reinstated); then reload the daemon",
    )
    p = add("node-revoke", "end a speaker's login now and disconnect it (a stolen board)")
    p.add_argument("node")
    p.add_argument("--operator", help="your name, journaled as given (not verified)")
    p = add("demo", "run a slot now on a simulated fleet and print coverage")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p = add("simulate", "run simulated speaker agents")
    p.add_argument(
        "--nodes", type=int, default=0, help="number of agents (default: the config's nodes)"
    )
    p.add_argument(
        "--loss", type=float, default=0.0, help="probability of dropping an inbound message"
    )
    p.add_argument(
        "--flap", type=float, default=0.0, help="probability per heartbeat of a disconnect"
    )
    p.add_argument("--broker", help="broker URL (default: from the config)")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    use_log_zone(None)  # this machine's zone, with its offset, until a command knows the commune's
    # APScheduler logs every job addition at INFO; only its warnings matter to an operator.
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = run(argv)
    except BrokenPipeError:
        # `broadcastd schedule --json | head`: the reader left early, which needs no traceback.
        # stdout goes to /dev/null so that Python's own flush at exit stays quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EX_FAILURE
    sys.exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0) if exc.code in (0, None) else EX_USAGE
    servers = ("run", "console")  # long-running: their start and stop are worth a log line
    _setup_logging(args.verbose if args.command not in servers else max(1, args.verbose))
    module = importlib.import_module(f"broadcastd.cli.{COMMANDS[args.command]}")
    try:
        code: int = module.run(args)
    except BroadcastdError as exc:
        return report_failure(f"broadcastd {args.command}", exc)
    except KeyboardInterrupt:
        return 130
    return code
